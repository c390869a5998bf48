// Pure helpers for showing messages: nick colours, IRC formatting codes,
// links, times and days, and which system lines are joins/parts/quits.
// No DOM here (node --test imports this file): the renderers turn the
// segments these functions return into text nodes and classes.

// ---------------------------------------------------------------- nick colours

/** How many nick colours app.css defines (.nick-0 … .nick-15). */
export const NICK_COLOURS = 16;

/**
 * A nick's colour index: the same nick always gets the same colour, in every
 * tab and after a reload; case and IRC's trailing underscores/backticks do
 * not change it (bob, Bob and bob_ are one person).
 */
export function nickColour(nick) {
  const s = String(nick || '').toLowerCase().replace(/[_`|^]+$/, '');
  // FNV-1a, 32 bits.
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % NICK_COLOURS;
}

// ---------------------------------------------------------------- IRC formatting

const BOLD = '\x02';
const COLOUR = '\x03';
const HEX_COLOUR = '\x04';
const RESET = '\x0f';
const MONO = '\x11';
const REVERSE = '\x16';
const ITALIC = '\x1d';
const STRIKE = '\x1e';
const UNDERLINE = '\x1f';
// eslint-disable-next-line no-control-regex
const CODES = /[\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f]/;

/**
 * Splits text with IRC formatting codes into segments
 * `{text, bold, italic, underline, strike, mono, fg, bg}` (fg/bg: mIRC colour
 * numbers 0–98, or null). The codes themselves never reach the screen; hex
 * colours (\x04) and reverse are dropped (their text stays).
 */
export function parseIrc(text) {
  const out = [];
  if (!CODES.test(text)) return [{ text }];
  let cur = { bold: false, italic: false, underline: false, strike: false, mono: false, fg: null, bg: null };
  let buf = '';
  const flush = () => {
    if (!buf) return;
    const seg = { text: buf };
    for (const k of ['bold', 'italic', 'underline', 'strike', 'mono']) if (cur[k]) seg[k] = true;
    if (cur.fg !== null) seg.fg = cur.fg;
    if (cur.bg !== null) seg.bg = cur.bg;
    out.push(seg);
    buf = '';
  };
  const toggle = (k) => {
    flush();
    cur = { ...cur, [k]: !cur[k] };
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === BOLD) toggle('bold');
    else if (c === ITALIC) toggle('italic');
    else if (c === UNDERLINE) toggle('underline');
    else if (c === STRIKE) toggle('strike');
    else if (c === MONO) toggle('mono');
    else if (c === REVERSE) flush();
    else if (c === RESET) {
      flush();
      cur = { bold: false, italic: false, underline: false, strike: false, mono: false, fg: null, bg: null };
    } else if (c === COLOUR) {
      flush();
      const m = /^(\d{1,2})(?:,(\d{1,2}))?/.exec(text.slice(i + 1, i + 6));
      if (!m) cur = { ...cur, fg: null, bg: null };
      else {
        const fg = Number(m[1]);
        cur = { ...cur, fg: fg === 99 ? null : fg };
        if (m[2] !== undefined) {
          const bg = Number(m[2]);
          cur.bg = bg === 99 ? null : bg;
        }
        i += m[0].length;
      }
    } else if (c === HEX_COLOUR) {
      flush();
      const m = /^[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?/.exec(text.slice(i + 1, i + 14));
      if (m) i += m[0].length;
    } else buf += c;
  }
  flush();
  return out;
}

/** Text without IRC formatting codes (for notifications, titles, search). */
export function stripIrc(text) {
  return parseIrc(text).map((s) => s.text).join('');
}

/** CSS classes for a segment from parseIrc (the colours app.css defines for 0–15). */
export function segmentClasses(seg) {
  const cls = [];
  if (seg.bold) cls.push('irc-b');
  if (seg.italic) cls.push('irc-i');
  if (seg.underline) cls.push('irc-u');
  if (seg.strike) cls.push('irc-s');
  if (seg.mono) cls.push('irc-m');
  if (typeof seg.fg === 'number' && seg.fg < 16) cls.push(`irc-fg${seg.fg}`);
  if (typeof seg.bg === 'number' && seg.bg < 16) cls.push(`irc-bg${seg.bg}`);
  return cls;
}

// ---------------------------------------------------------------- links

// A candidate: a scheme we link, or www. at a word start, up to whitespace
// or a character that never belongs to a URL written in a chat.
const LINK_RE = /(?:\b(?:https?|ircs?):\/\/|\bwww\.)[^\s<>"\x00-\x1f\x7f]+/gi;
const PAIRS = { ')': '(', ']': '[', '}': '{' };

/** Trims what a person wrote after a URL: final punctuation, unbalanced closing brackets. */
function trimUrl(url) {
  for (;;) {
    const last = url[url.length - 1];
    if (/[.,;:!?'*~]/.test(last)) {
      url = url.slice(0, -1);
      continue;
    }
    if (PAIRS[last]) {
      const open = PAIRS[last];
      let depth = 0;
      for (const ch of url) {
        if (ch === open) depth++;
        else if (ch === last) depth--;
      }
      if (depth < 0) {
        url = url.slice(0, -1);
        continue;
      }
    }
    return url;
  }
}

/**
 * Finds links in plain text: http(s)://, irc(s):// and www. addresses, with
 * balanced parentheses kept (Wikipedia's "Foo_(bar)") and final punctuation
 * left out. Returns segments `{text}` or `{text, href}`; an href is always the
 * URL parser's reading of the text and its scheme is one of the four.
 */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(LINK_RE)) {
    if (m.index < last) continue;
    const url = trimUrl(m[0]);
    if (!url || /^www\.$/i.test(url)) continue;
    let href = null;
    try {
      const u = new URL(/^www\./i.test(url) ? `https://${url}` : url);
      if (['http:', 'https:', 'irc:', 'ircs:'].includes(u.protocol) && (u.hostname || u.protocol.startsWith('irc'))) href = u.href;
    } catch (_) { /* not a URL after all */ }
    if (!href) continue;
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: url, href });
    last = m.index + url.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/**
 * IRC formatting and links together: segments of parseIrc, each split by
 * linkify (a link inside a bold run stays bold).
 */
export function richSegments(text) {
  const out = [];
  for (const seg of parseIrc(text)) {
    for (const part of linkify(seg.text)) out.push({ ...seg, ...part });
  }
  return out;
}

// ---------------------------------------------------------------- time

const fmtCache = new Map();
function formatter(key, opts) {
  let f = fmtCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(undefined, opts);
    fmtCache.set(key, f);
  }
  return f;
}

/** The clock setting as Intl's hour12 (undefined: the locale's own). */
function hour12(clock) {
  return clock === '12' ? true : clock === '24' ? false : undefined;
}

/** A message's time of day, in the one format of the UI ('auto' | '12' | '24'). */
export function fmtTime(ms, clock = 'auto') {
  return formatter(`t${clock}`, { hour: '2-digit', minute: '2-digit', hour12: hour12(clock) }).format(new Date(ms));
}

export function fmtDate(ms) {
  return formatter('d', { dateStyle: 'medium' }).format(new Date(ms));
}

export function fmtFull(ms, clock = 'auto') {
  return formatter(`f${clock}`, {
    weekday: 'long', year: 'numeric', month: 'long', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: hour12(clock),
  }).format(new Date(ms));
}

/** The local calendar day of a time, as a sortable key (YYYY-MM-DD). */
export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** "Today", "Yesterday" or the date, for a day separator. */
export function dayLabel(ms, now = Date.now()) {
  const k = dayKey(ms);
  if (k === dayKey(now)) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (k === dayKey(y.getTime())) return 'Yesterday';
  return formatter('day', { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' }).format(new Date(ms));
}

/** When a message was written: `sent` for server-replayed (delayed) ones. */
export function messageTime(m) {
  return m.delayed && typeof m.sent === 'number' && m.sent > 0 ? m.sent : m.time;
}

// ---------------------------------------------------------------- joins, parts, quits

/**
 * What a libpurple system line in a chat says about membership, if anything:
 * `{type: 'join'|'part'|'quit'|'nick', nick, to?}` or null.
 */
export function classifySystem(text) {
  let m = /^(\S+)(?: \[[^\]]*\])? entered the room\.$/.exec(text);
  if (m) return { type: 'join', nick: m[1] };
  m = /^(\S+)(?: \[[^\]]*\])? has joined \S+$/.exec(text);
  if (m) return { type: 'join', nick: m[1] };
  m = /^(\S+) left the room(?: \((.*)\))?\.$/.exec(text);
  if (m) return { type: /^(Quit|Ping timeout|Read error|Remote host closed)/i.test(m[2] || '') ? 'quit' : 'part', nick: m[1] };
  m = /^(\S+) has (?:left|quit)\b/.exec(text);
  if (m) return { type: /quit/.test(text) ? 'quit' : 'part', nick: m[1] };
  m = /^(\S+) is now known as (\S+?)\.?$/.exec(text);
  if (m) return { type: 'nick', nick: m[1], to: m[2] };
  return null;
}

/** "3 joined, 2 left, 1 quit, 1 changed nick" for a run of membership lines. */
export function summarizeEvents(events) {
  const n = { join: 0, part: 0, quit: 0, nick: 0 };
  for (const e of events) n[e.type]++;
  const parts = [];
  if (n.join) parts.push(`${n.join} joined`);
  if (n.part) parts.push(`${n.part} left`);
  if (n.quit) parts.push(`${n.quit} quit`);
  if (n.nick) parts.push(`${n.nick} changed nick${n.nick > 1 ? 's' : ''}`);
  return parts.join(', ');
}

// ---------------------------------------------------------------- rows

/** Messages closer than this from one sender form one group. */
export const GROUP_MS = 5 * 60 * 1000;

/** The part of a row's `sig` that follows an outgoing line's sending state. */
function sendingSig(m) {
  if (m.error) return 'x';
  if (m.queued) return 'q';
  return m.wasQueued ? 's' : '';
}

/**
 * The rows of a message list: day separators, the unread marker, messages
 * (with `cont` when they continue the previous sender's group) and runs of
 * joins/parts/quits condensed into one row (or left out when `hideJoins`).
 * Each row has a stable `key` and a `sig` that changes when its element
 * must be rebuilt.
 *
 * opts: {hideJoins, markerSeq (the read marker when the conversation was
 * opened: the unread line goes before the first later incoming message),
 * isChat, now}
 */
export function buildRows(messages, opts = {}) {
  const rows = [];
  let day = null;
  let prev = null; // last message row (for grouping)
  let run = null; // open run of membership lines
  let marker = !(opts.markerSeq > 0);
  const closeRun = () => {
    if (!run) return;
    if (!opts.hideJoins) {
      if (run.items.length === 1) {
        const m = run.items[0].m;
        rows.push({ type: 'msg', key: `m${m.seq}`, sig: 'sys', m });
      } else {
        rows.push({ type: 'events', key: `e${run.items[0].m.seq}`, sig: `e${run.items.length}`,
          items: run.items, summary: summarizeEvents(run.items.map((x) => x.ev)) });
      }
    }
    run = null;
    prev = null;
  };
  for (const m of messages) {
    const t = messageTime(m);
    const dk = dayKey(t);
    if (dk !== day) {
      closeRun();
      day = dk;
      rows.push({ type: 'day', key: `d${dk}`, sig: dayLabel(t, opts.now), label: dayLabel(t, opts.now), time: t });
      prev = null;
    }
    if (!marker && m.seq > opts.markerSeq && m.direction === 'in') {
      closeRun();
      marker = true;
      rows.push({ type: 'unread', key: 'unread', sig: 'u' });
      prev = null;
    }
    const ev = opts.isChat !== false && m.direction === 'system' ? classifySystem(m.text) : null;
    if (ev) {
      if (!run) run = { items: [] };
      run.items.push({ m, ev });
      continue;
    }
    closeRun();
    const cont = !!(prev && m.direction !== 'system' && prev.direction === m.direction
      && prev.sender === m.sender && t - messageTime(prev) < GROUP_MS && t >= messageTime(prev));
    rows.push({ type: 'msg', key: `m${m.seq}`, sig: (cont ? 'c' : 'f') + sendingSig(m), m, cont });
    prev = m.direction === 'system' ? null : m;
  }
  closeRun();
  return rows;
}

/**
 * libpurple writes times into some system lines in its own format
 * ("set by bob at 22:16:31 on 12/01/26"): they are rewritten in the UI's.
 */
export function localizeTimes(text, clock = 'auto') {
  return text.replace(/\b(\d{1,2}):(\d{2}):(\d{2}) on (\d{2})\/(\d{2})\/(\d{2})\b/g, (all, H, M, S, mo, d, y) => {
    const t = new Date(2000 + Number(y), Number(mo) - 1, Number(d), Number(H), Number(M), Number(S));
    if (Number.isNaN(t.getTime()) || t.getMonth() !== Number(mo) - 1) return all;
    return `${fmtTime(t.getTime(), clock)} on ${fmtDate(t.getTime())}`;
  });
}
