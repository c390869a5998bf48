// The client's state, and how protocol events (docs/protocol.md) change it.
// Pure: no DOM, no storage, no network (node --test imports this file).
// `applyHello` and `applyEvent` change the state and return a list of
// effects for the UI to carry out (toasts, opening a chat, closing a prompt).

import { parseNotify } from './notify.js';

export const TYPING_SHOW_MS = 15000;

export const convKey = (account, kind, name) => JSON.stringify([account, kind, name]);

export function createState() {
  return {
    user: null,
    accounts: new Map(), // id -> account
    convs: new Map(), // key -> conversation
    buddies: new Map(), // key -> buddy
    requests: new Map(), // id -> request
    protocols: null, // [{id, name, ...}] once fetched
    current: null, // key of the open conversation
    view: 'welcome', // welcome | conv | search | accounts | settings
    narrowMain: false, // on a phone: the main pane is shown instead of the list
    conn: 'connecting',
    connInfo: {},
    status: null,
    pendingJoin: null, // {account, name} to open when joined
    dismissedRequests: new Set(),
    hidden: new Map(), // key -> last_seq when the person closed it
    drafts: new Map(), // key -> unsent text
    convsNext: null, // cursor of the conversations the snapshot left out (conversations.list)
    convsLoading: false, // a conversations.list is under way
    notify: { levels: [], highlights: [] }, // notification levels and highlight words (backend state)
  };
}

/** Back to a signed-out state (keeps the protocol list, which is not per user). */
export function resetState(state) {
  const fresh = createState();
  fresh.protocols = state.protocols;
  Object.assign(state, fresh);
}

/** The conversation entry for (account, {kind, name}); created unless `create` is false. */
export function getConv(state, account, conversation, create = true) {
  const key = convKey(account, conversation.kind, conversation.name);
  let e = state.convs.get(key);
  if (!e && create) {
    e = {
      key, account, kind: conversation.kind, name: conversation.name,
      unread: 0, mentions: 0, read_seq: 0, last_seq: 0,
      messages: [], seqs: new Set(),
      loaded: false, loading: false, hasMore: true,
      joined: false, topic: null, members: new Map(),
      typing: null, marking: 0,
    };
    state.convs.set(key, e);
  }
  return e;
}

export function currentConv(state) {
  return state.current ? state.convs.get(state.current) || null : null;
}

/** Adds a message in seq order; returns it, or null if it is already there. */
export function addMessage(e, m) {
  if (e.seqs.has(m.seq)) return null;
  e.seqs.add(m.seq);
  const msg = {
    seq: m.seq, time: m.time, sender: m.sender, alias: m.alias, text: m.text,
    direction: m.direction, truncated: m.truncated, delayed: m.delayed, sent: m.sent, mention: m.mention,
    action: m.action, queued: m.queued, error: m.error,
  };
  const list = e.messages;
  if (list.length === 0 || list[list.length - 1].seq < m.seq) list.push(msg);
  else {
    let i = list.length;
    while (i > 0 && list[i - 1].seq > m.seq) i--;
    list.splice(i, 0, msg);
  }
  return msg;
}

export function recountUnread(e) {
  if (e.read_seq >= e.last_seq) {
    e.unread = 0;
    e.mentions = 0;
    return;
  }
  // Exact when the loaded messages reach back to the read marker.
  if ((e.messages.length && e.messages[0].seq <= e.read_seq + 1) || (!e.hasMore && e.loaded)) {
    const unread = e.messages.filter((m) => m.direction === 'in' && m.seq > e.read_seq);
    e.unread = unread.length;
    e.mentions = unread.filter((m) => m.mention || e.kind === 'im').length;
  }
}

function forgetCurrentIfGone(state) {
  if (state.current && !state.convs.has(state.current)) {
    state.current = null;
    if (state.view === 'conv') state.view = 'welcome';
  }
}

/**
 * The `hello` reply: a snapshot. On a fresh hello (not resumed) the loaded
 * messages are dropped (they are fetched again). Returns effects.
 */
export function applyHello(state, reply, { resumed }) {
  const fx = [];
  state.accounts = new Map((reply.accounts || []).map((a) => [a.id, a]));
  state.buddies = new Map((reply.buddies || []).map((b) => [convKey(b.account, 'im', b.name), b]));
  state.requests = new Map((reply.requests || []).map((r) => [r.request, r]));
  state.notify = parseNotify(reply.notify);
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
  for (const c of reply.conversations || []) applySummary(state, c, fx);
  // The snapshot holds the newest conversations; the rest come page by
  // page (conversations.list) when the person asks.
  state.convsNext = reply.conversations_next ?? null;
  state.convsLoading = false;
  for (const c of reply.chats || []) {
    const e = getConv(state, c.account, c.conversation);
    e.joined = true;
    e.topic = c.topic;
    e.members = new Map((c.members || []).map((m) => [m.name, m]));
  }
  // Conversations of removed accounts go away.
  for (const [k, e] of state.convs) {
    if (!state.accounts.has(e.account)) state.convs.delete(k);
  }
  forgetCurrentIfGone(state);
  return fx;
}

/** One conversation summary ({account, conversation, last_seq, read_seq, unread}) into the state. */
function applySummary(state, c, fx) {
  const e = getConv(state, c.account, c.conversation);
  e.unread = c.unread;
  // Every unread private message counts as a mention (it is addressed to you).
  e.mentions = e.kind === 'im' ? c.unread : (c.mentions ?? 0);
  e.read_seq = c.read_seq;
  e.last_seq = c.last_seq;
  // Closed, and something new arrived meanwhile: it comes back.
  if (state.hidden.has(e.key) && c.unread > 0 && c.last_seq > state.hidden.get(e.key)) {
    state.hidden.delete(e.key);
    fx.push({ type: 'hiddenChanged' });
  }
}

/**
 * A `conversations.list` reply ({conversations, next}): older conversations
 * the snapshot left out. A conversation the state already knows as newer
 * (an event came after the page was made) keeps what it has; conversations
 * of unknown accounts are ignored. Returns effects.
 */
export function applyConversationsPage(state, reply) {
  const fx = [];
  for (const c of reply.conversations || []) {
    if (!state.accounts.has(c.account)) continue;
    const known = getConv(state, c.account, c.conversation, false);
    if (known && known.last_seq >= c.last_seq) continue;
    applySummary(state, c, fx);
  }
  state.convsNext = reply.next ?? null;
  state.convsLoading = false;
  return fx;
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

/**
 * The nick an account is known by on its server: `nick` when the server
 * gave another one (the asked-for nick was taken), else the user name's
 * part before `@`.
 */
export function accountNick(a) {
  return a.nick || a.username.split('@')[0];
}

export function accountLabel(state, id) {
  const a = state.accounts.get(id);
  if (!a) return `account ${id}`;
  return a.alias || a.username;
}

/** Makes a closed conversation visible again. */
export function unhide(state, key) {
  return state.hidden.delete(key);
}

/**
 * One event, in seq order. `replayed`: missed while disconnected (the
 * snapshot already counted it). `now`: the time, for typing notifications.
 * Returns effects: {type: 'toast', text, level, title, tag}, {type:
 * 'dropToasts', tag}, {type: 'open', key}, {type: 'requestClosed', id},
 * {type: 'typing', ms}, {type: 'newMessage', key, message, live},
 * {type: 'hiddenChanged'}, {type: 'notifyChanged'}, {type: 'joinFailed',
 * account, name, message} (the join the person asked for was refused).
 */
export function applyEvent(state, ev, { replayed = false, now = Date.now() } = {}) {
  const fx = [];
  const creates = ev.op === 'message' || ev.op === 'chat.joined' || ev.op === 'typing';
  const e = ev.conversation && typeof ev.account === 'number' ? getConv(state, ev.account, ev.conversation, creates) : null;
  if (ev.op === 'message') {
    // Replayed messages (missed while disconnected) fill the gap in the
    // loaded history; the snapshot already counted them.
    const added = addMessage(e, ev);
    if (added && !replayed) {
      e.last_seq = Math.max(e.last_seq, ev.seq);
      if (ev.direction === 'in' && ev.seq > e.read_seq) {
        e.unread++;
        if (ev.mention || e.kind === 'im') e.mentions++;
      }
      if (ev.direction === 'in' && e.typing && e.kind === 'im') e.typing = null;
    }
    if (ev.direction === 'in' && state.hidden.has(e.key) && ev.seq > state.hidden.get(e.key)) {
      state.hidden.delete(e.key);
      fx.push({ type: 'hiddenChanged' });
    }
    if (added) fx.push({ type: 'newMessage', key: e.key, message: added, live: !replayed });
    return fx;
  }
  if (ev.op === 'message.sent') {
    // A queued line went to the network (or could not): also when
    // replayed, since the replayed message said `queued`.
    const m = e && e.seqs.has(ev.message) ? e.messages.find((x) => x.seq === ev.message) : null;
    if (m) {
      m.queued = false;
      m.wasQueued = true;
      if (ev.error) m.error = ev.error;
    }
    return fx;
  }
  if (replayed) return fx; // the snapshot already reflects it
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
      fx.push({ type: 'dropToasts', tag: `account-${ev.account}` });
      state.accounts.delete(ev.account);
      for (const [k, c] of state.convs) if (c.account === ev.account) state.convs.delete(k);
      for (const [k, b] of state.buddies) if (b.account === ev.account) state.buddies.delete(k);
      forgetCurrentIfGone(state);
      break;
    case 'account.status': {
      const a = state.accounts.get(ev.account);
      if (a) {
        a.status = ev.status;
        if (ev.message) a.message = ev.message;
        else delete a.message;
        if (ev.status === 'error' && ev.message) {
          fx.push({ type: 'toast', text: ev.message, level: 'error',
            title: `${accountLabel(state, ev.account)}: connection error`, tag: `account-${ev.account}` });
        } else if (ev.status === 'connected') fx.push({ type: 'dropToasts', tag: `account-${ev.account}` });
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
        if (unhide(state, e.key)) fx.push({ type: 'hiddenChanged' });
        fx.push({ type: 'open', key: e.key });
      }
      break;
    case 'chat.join_failed': {
      const p = state.pendingJoin;
      const want = p ? p.name.toLowerCase() : null;
      const got = ev.conversation.name.toLowerCase();
      if (p && p.account === ev.account && (want === got || `#${want}` === got)) {
        state.pendingJoin = null;
        fx.push({ type: 'joinFailed', account: ev.account, name: ev.conversation.name, message: ev.message });
      } else {
        fx.push({ type: 'toast', text: ev.message, level: 'error', title: `Could not join ${ev.conversation.name}` });
      }
      break;
    }
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
      fx.push({ type: 'requestClosed', id: ev.request });
      break;
    case 'typing':
      if (e) {
        e.typing = ev.state === 'none' ? null : { state: ev.state, until: now + TYPING_SHOW_MS };
        if (e.typing) fx.push({ type: 'typing', ms: TYPING_SHOW_MS + 50 });
      }
      break;
    case 'notice': {
      const added = ev.kind === 'added_you' && ev.who
        ? `${ev.alias || ev.who} added you to their buddy list.${ev.message ? `\n${ev.message}` : ''}` : null;
      const text = [added, ev.primary, ev.secondary, ev.text, ev.uri].filter(Boolean).join('\n');
      if (text) {
        fx.push({ type: 'toast', text, level: ev.level === 'error' ? 'error' : ev.level === 'warning' ? 'warning' : 'info',
          title: ev.title || (typeof ev.account === 'number' ? accountLabel(state, ev.account) : null) });
      }
      break;
    }
    case 'status':
      state.status = { status: ev.status, message: ev.message };
      break;
    case 'notify.changed':
      state.notify = parseNotify(ev);
      fx.push({ type: 'notifyChanged' });
      break;
    default:
      break;
  }
  return fx;
}

// ---------------------------------------------------------------- the conversation list

const byName = (a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }) || a.name.localeCompare(b.name);

/**
 * The conversation list: grouped by account (in account order), chats
 * before private conversations, each by name. The order depends on nothing
 * that changes while people talk, join or quit. Closed ones are left out
 * (except the open one).
 */
export function listGroups(state) {
  const groups = new Map();
  for (const a of [...state.accounts.values()].sort((x, y) => x.id - y.id)) groups.set(a.id, { account: a.id, convs: [] });
  for (const e of state.convs.values()) {
    if (state.hidden.has(e.key) && e.key !== state.current) continue;
    if (!groups.has(e.account)) groups.set(e.account, { account: e.account, convs: [] });
    groups.get(e.account).convs.push(e);
  }
  const out = [];
  for (const g of groups.values()) {
    if (!g.convs.length) continue;
    g.convs.sort((a, b) => (a.kind === b.kind ? byName(a, b) : a.kind === 'chat' ? -1 : 1));
    out.push(g);
  }
  return out;
}

/** The list in the order shown. */
export function orderedConvs(state) {
  return listGroups(state).flatMap((g) => g.convs);
}

/**
 * The next (dir 1) or previous (dir -1) conversation in list order after
 * the open one, wrapping; only ones with unread messages when `unreadOnly`.
 * null when there is none.
 */
export function stepConv(state, dir, unreadOnly = false) {
  const list = orderedConvs(state);
  if (!list.length) return null;
  const n = list.length;
  let i = list.findIndex((c) => c.key === state.current);
  for (let k = 0; k < n; k++) {
    i = i < 0 ? (dir > 0 ? 0 : n - 1) : (i + dir + n) % n;
    const c = list[i];
    if (c.key === state.current) continue;
    if (!unreadOnly || c.unread > 0) return c.key;
  }
  return null;
}

/** Unread messages in every conversation but `exceptKey`. */
export function totalUnread(state, exceptKey = null) {
  let n = 0;
  for (const c of state.convs.values()) if (c.key !== exceptKey) n += c.unread;
  return n;
}

// ---------------------------------------------------------------- closed conversations

/** The closed conversations as stored (JSON-able): [[key, seq], ...]. */
export function hiddenToJson(state) {
  return [...state.hidden.entries()];
}

export function hiddenFromJson(state, json) {
  state.hidden = new Map();
  if (!Array.isArray(json)) return;
  for (const item of json) {
    if (Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'number') state.hidden.set(item[0], item[1]);
  }
}

/** Closes a conversation: it leaves the list until a new message arrives in it. */
export function hide(state, key) {
  const e = state.convs.get(key);
  if (!e) return;
  state.hidden.set(key, e.last_seq);
  if (state.current === key) {
    state.current = null;
    if (state.view === 'conv') state.view = 'welcome';
    state.narrowMain = false;
  }
}

// ---------------------------------------------------------------- members

const RANKS = ['founder', 'op', 'halfop', 'voice'];
export const RANK_PREFIX = ['~', '@', '%', '+', ''];

export function memberRank(m) {
  const f = m.flags || [];
  const i = RANKS.findIndex((r) => f.includes(r));
  return i < 0 ? RANKS.length : i;
}

/** Members by rank then name, those matching `filter` (name or alias, any case). */
export function sortedMembers(e, filter = '') {
  const q = filter.trim().toLowerCase();
  return [...e.members.values()]
    .filter((m) => !q || m.name.toLowerCase().includes(q) || (m.alias || '').toLowerCase().includes(q))
    .sort((a, b) => memberRank(a) - memberRank(b) || a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));
}

const KNOWN_PROTOCOLS = {
  'prpl-irc': 'IRC', 'prpl-jabber': 'XMPP', 'prpl-simple': 'SIMPLE', 'prpl-zephyr': 'Zephyr',
  'prpl-novell': 'GroupWise', 'prpl-bonjour': 'Bonjour', 'prpl-gg': 'Gadu-Gadu', 'prpl-meanwhile': 'Sametime',
};

export function protocolName(state, id) {
  const p = state.protocols && state.protocols.find((x) => x.id === id);
  if (p) return p.name;
  return KNOWN_PROTOCOLS[id] || String(id).replace(/^prpl-/, '');
}
