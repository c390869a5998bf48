// Notification rules of the client, mirroring the backend's (src/backend/
// notify.rs): which level applies to a conversation, whether a message
// notifies at that level, what a notification says, and the recent
// mentions across conversations. Pure: no DOM, no Notification API
// (node --test imports this file).

export const LEVELS = ['all', 'mentions', 'none'];

/** The settings as the `hello` snapshot and `notify.changed` carry them. */
export function parseNotify(v) {
  const levels = Array.isArray(v && v.levels) ? v.levels.filter((l) => l && LEVELS.includes(l.level)) : [];
  const highlights = Array.isArray(v && v.highlights) ? v.highlights.filter((w) => typeof w === 'string') : [];
  return { levels, highlights };
}

function find(notify, account, kind, name) {
  for (const l of notify.levels) {
    const a = l.account ?? 0;
    const c = l.conversation || null;
    if (a !== account) continue;
    if (kind === null ? !c : c && c.kind === kind && c.name === name) return l.level;
  }
  return null;
}

/**
 * The level set for exactly this conversation, or 'default' (what the
 * picker shows).
 */
export function ownLevel(notify, account, kind, name) {
  return find(notify, account, kind, name) || 'default';
}

/**
 * The level that applies: the conversation's, else the account's, else
 * the global one, else `all` for private conversations and `mentions` for
 * chats.
 */
export function levelFor(notify, account, kind, name) {
  return find(notify, account, kind, name)
    || find(notify, account, null)
    || find(notify, 0, null)
    || (kind === 'im' ? 'all' : 'mentions');
}

/**
 * Whether an incoming message notifies at `level` in a conversation of
 * `kind`. A delayed chat message is the room's history replayed (never);
 * a delayed private one waited for us while we were offline (it counts).
 */
export function notifies(level, message, kind = 'chat') {
  if (!message || message.direction !== 'in' || (message.delayed && kind !== 'im')) return false;
  if (level === 'all') return true;
  if (level === 'mentions') return !!message.mention;
  return false;
}

/** At most `n` characters, whitespace folded, "…" when cut. */
export function shorten(s, n) {
  const t = String(s).split(/\s+/).filter(Boolean).join(' ');
  const chars = [...t];
  return chars.length <= n ? t : `${chars.slice(0, n - 1).join('')}…`;
}

/**
 * What a desktop notification for a message says: the same title, body
 * and tag as the backend's Web Push payload, so one replaces the other.
 */
export function notificationFor(conv, m) {
  const who = m.alias || m.sender;
  const title = conv.kind === 'chat' ? `${who} in ${conv.name}` : who;
  const body = m.action ? `* ${who} ${m.text}` : `${who}: ${m.text}`;
  return {
    title: shorten(title, 80),
    body: shorten(body, 200),
    tag: `${conv.account}/${conv.kind}/${conv.name}`,
  };
}

/**
 * The most recent mentions in the loaded messages of every conversation,
 * newest first: [{key, account, conversation, seq, time, sender, alias, text}].
 */
export function recentMentions(convs, limit = 50) {
  const out = [];
  for (const e of convs) {
    for (const m of e.messages) {
      if (m.direction === 'in' && m.mention) {
        out.push({
          key: e.key, account: e.account, conversation: { kind: e.kind, name: e.name },
          seq: m.seq, time: m.time, sender: m.sender, alias: m.alias, text: m.text, action: m.action,
        });
      }
    }
  }
  out.sort((a, b) => b.seq - a.seq);
  return out.slice(0, limit);
}

/**
 * The backend's list of mentions (the `mentions` op) and those in the
 * loaded messages, as one list: each seq once, newest first.
 */
export function mergeMentions(fetched, loaded, limit = 50) {
  const bySeq = new Map();
  for (const m of [...(fetched || []), ...(loaded || [])]) {
    if (m && typeof m.seq === 'number' && !bySeq.has(m.seq)) bySeq.set(m.seq, m);
  }
  return [...bySeq.values()].sort((a, b) => b.seq - a.seq).slice(0, limit);
}

/** The words of the highlight setting's text field (comma or newline separated). */
export function parseHighlights(text) {
  const seen = new Set();
  const out = [];
  for (const w of String(text).split(/[,\n]/)) {
    const t = w.trim();
    if (t && !seen.has(t.toLowerCase())) {
      seen.add(t.toLowerCase());
      out.push(t);
    }
  }
  return out;
}
