// The message list of the open conversation: rows from format.buildRows
// (day separators, groups, condensed joins/parts, the unread marker) as
// text nodes and classes, in a window over the loaded messages so that
// opening a channel with thousands of them builds only the last screenfuls.

import { $, h, clear, setText, show } from './dom.js';
import {
  buildRows, fmtFull, fmtTime, localizeTimes, messageTime, nickColour, richSegments, segmentClasses, stripIrc,
} from './format.js';

/** Messages rendered when a conversation opens (a few screenfuls). */
export const WINDOW = 60;
/** Messages added to the window per step when scrolling up. */
const STEP = 100;
/** When following the newest messages, the window shrinks back once it is this big. */
const MAX_RENDERED = 400;

/** Index of the first message with seq >= `seq` (messages are in seq order). */
function lowerBound(messages, seq) {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Text with IRC formatting and links as nodes: spans with classes for
 * formatting, <a> for links (href from format.linkify: http, https, irc,
 * ircs only). Nothing is ever parsed as HTML.
 */
export function richText(text) {
  return richSegments(text).map((seg) => {
    const cls = segmentClasses(seg).join(' ') || null;
    if (seg.href) return h('a', { href: seg.href, target: '_blank', rel: 'noopener noreferrer', class: cls }, seg.text);
    return cls ? h('span', { class: cls }, seg.text) : seg.text;
  });
}

export function nickClass(nick) {
  return `nick-${nickColour(nick)}`;
}

export class MessageView {
  /** ctx: {settings(): settings, loadOlder(e): promise, onScrollBottom()} */
  constructor(ctx) {
    this.ctx = ctx;
    this.list = $('messages');
    this.scroller = $('scroller');
    this.reset();
    this.scroller.addEventListener('scroll', () => this.onScroll());
    $('btn-older').addEventListener('click', () => this.older());
    $('btn-latest').addEventListener('click', () => this.toLatest());
    // Phone keyboards, rotating, resizing: the newest message stays in view.
    new ResizeObserver(() => {
      if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    }).observe(this.scroller);
  }

  reset() {
    clear(this.list);
    this.els = new Map(); // row key -> {el, sig}
    this.key = null; // conversation shown
    this.startSeq = 0; // first message in the window
    this.stick = true; // following the newest message
    this.keepScroll = false; // older rows were added above: keep the view still
    this.markerSeq = 0;
    this.expanded = new Set();
    this.e = null;
  }

  /** Opening a conversation: the window covers its last messages; the unread line goes at the read marker. */
  open(e) {
    this.reset();
    this.key = e.key;
    this.e = e;
    this.markerSeq = e.unread > 0 ? e.read_seq : 0;
    const n = e.messages.length;
    // Start at the unread line if it is not too far back, else show the last screenfuls.
    let from = Math.max(0, n - WINDOW);
    if (this.markerSeq) from = Math.min(from, Math.max(0, lowerBound(e.messages, this.markerSeq) - 10));
    from = Math.max(from, n - MAX_RENDERED);
    this.startSeq = n ? e.messages[from].seq : 0;
    this.scrollToMarker = !!this.markerSeq;
  }

  onScroll() {
    const s = this.scroller;
    this.stick = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
    show($('btn-latest'), !this.stick);
    if (this.stick) this.ctx.onScrollBottom();
    if (s.scrollTop < 60) this.older();
  }

  /** Shows older messages: more of the loaded ones first, then from the server. */
  older() {
    const e = this.e;
    if (!e) return;
    const i = lowerBound(e.messages, this.startSeq);
    if (i > 0) {
      this.startSeq = e.messages[Math.max(0, i - STEP)].seq;
      this.keepScroll = true;
      this.render(e);
    } else if (e.loaded && e.hasMore && !e.loading) {
      this.keepScroll = true;
      this.startSeq = 0;
      this.ctx.loadOlder(e);
    }
  }

  /** History was prepended: keep the view where it was. */
  prepended() {
    this.keepScroll = true;
  }

  toLatest() {
    this.stick = true;
    const e = this.e;
    if (e && e.messages.length - lowerBound(e.messages, this.startSeq) > MAX_RENDERED) {
      this.startSeq = e.messages[e.messages.length - WINDOW].seq;
      this.render(e);
    }
    this.scroller.scrollTop = this.scroller.scrollHeight;
    show($('btn-latest'), false);
    this.ctx.onScrollBottom();
  }

  /** The person sent something: follow it. */
  follow() {
    this.stick = true;
  }

  /** The element of message `seq`, rendering back to it if needed. */
  reveal(e, seq) {
    const i = lowerBound(e.messages, seq);
    const start = Math.max(0, i - 20);
    if (e.messages.length && e.messages[start].seq < this.startSeq) this.startSeq = e.messages[start].seq;
    this.stick = false;
    this.render(e);
    const r = this.els.get(`m${seq}`);
    return r ? r.el : null;
  }

  rowEl(row, clock) {
    if (row.type === 'day') {
      return h('li', { class: 'day' }, h('span', null, row.label));
    }
    if (row.type === 'unread') {
      return h('li', { class: 'unread-line' }, h('span', null, 'New messages'));
    }
    if (row.type === 'events') {
      const open = this.expanded.has(row.key);
      const btn = h('button', { type: 'button', class: 'link small events-toggle', 'aria-expanded': String(open),
        onclick: () => {
          if (this.expanded.has(row.key)) this.expanded.delete(row.key);
          else this.expanded.add(row.key);
          this.render(this.e);
        } }, row.summary);
      const first = row.items[0].m;
      return h('li', { class: 'events' },
        h('time', { datetime: new Date(first.time).toISOString(), title: fmtFull(first.time, clock) }, fmtTime(first.time, clock)),
        h('div', null, btn,
          open ? h('ul', { class: 'event-lines' }, row.items.map(({ m }) => this.messageEl(m, false, clock))) : null));
    }
    return this.messageEl(row.m, row.cont, clock);
  }

  messageEl(m, cont, clock) {
    const t = messageTime(m);
    const title = m.delayed && t !== m.time
      ? `Sent ${fmtFull(t, clock)} (delivered ${fmtFull(m.time, clock)})` : fmtFull(t, clock);
    // The backend flags actions (`action: true`, text without "/me ");
    // older history still has the prefix.
    const prefixed = !m.action && m.direction !== 'system' && m.text.startsWith('/me ');
    const action = m.action === true || prefixed;
    const who = m.alias || m.sender;
    const cls = ['msg', m.direction];
    if (cont) cls.push('cont');
    if (action) cls.push('action');
    if (m.mention) cls.push('mention');
    if (m.delayed) cls.push('delayed');
    if (m.queued) cls.push('queued');
    // A paced line (IRC): "queued" until the backend hands it to the
    // network, then "sent"; or why it was not sent.
    let sending = null;
    if (m.error) sending = h('span', { class: 'sending failed' }, ` ${m.error}`);
    else if (m.queued) sending = h('span', { class: 'sending', title: 'Waiting for the network\'s pace' }, ' queued');
    else if (m.wasQueued) sending = h('span', { class: 'sending sent' }, ' sent');
    return h('li', { class: cls.join(' '), dataset: { seq: String(m.seq) } },
      h('time', { datetime: new Date(t).toISOString(), title }, fmtTime(t, clock)),
      m.direction === 'system' ? null
        : h('span', { class: `sender ${nickClass(m.sender)}`, title: m.alias && m.alias !== m.sender ? m.sender : null },
          action ? `* ${who}` : who),
      h('span', { class: 'text' }, richText(prefixed ? m.text.slice(4) : m.direction === 'system' ? localizeTimes(m.text, clock) : m.text)),
      m.truncated ? h('span', { class: 'muted' }, ' (cut: too long)') : null,
      sending);
  }

  render(e) {
    if (this.key !== e.key) this.open(e);
    this.e = e;
    const s = this.ctx.settings();
    const scroller = this.scroller;
    const list = this.list;
    // Following the newest messages: the window does not grow forever.
    let from = lowerBound(e.messages, this.startSeq);
    if (this.stick && e.messages.length - from > MAX_RENDERED) {
      from = e.messages.length - WINDOW;
      this.startSeq = e.messages[from].seq;
    }
    const rows = buildRows(e.messages.slice(from), {
      hideJoins: s.hideJoins, markerSeq: this.markerSeq, isChat: e.kind === 'chat',
    });
    // (Reading the geometry forces a layout: only when it is needed.)
    const oldHeight = this.keepScroll ? scroller.scrollHeight : 0;
    const oldTop = this.keepScroll ? scroller.scrollTop : 0;
    const sigBase = `${s.clock}|`;
    const keep = new Set();
    let cursor = list.firstChild;
    for (const row of rows) {
      const sig = sigBase + row.sig + (row.type === 'events' && this.expanded.has(row.key) ? '+' : '');
      let r = this.els.get(row.key);
      if (!r || r.sig !== sig) {
        const el = this.rowEl(row, s.clock);
        if (r) {
          if (cursor === r.el) cursor = cursor.nextSibling;
          r.el.remove();
        }
        r = { el, sig };
        this.els.set(row.key, r);
      }
      keep.add(row.key);
      if (r.el === cursor) cursor = cursor.nextSibling;
      else list.insertBefore(r.el, cursor);
    }
    for (const [k, r] of this.els) {
      if (!keep.has(k)) {
        r.el.remove();
        this.els.delete(k);
      }
    }
    const before = from > 0;
    show($('btn-older'), before || (e.loaded && e.hasMore));
    $('btn-older').disabled = e.loading;
    show($('history-start'), !before && e.loaded && !e.hasMore);
    if (this.keepScroll) {
      this.keepScroll = false;
      scroller.scrollTop = oldTop + (scroller.scrollHeight - oldHeight);
    } else if (this.scrollToMarker && this.els.has('unread')) {
      this.scrollToMarker = false;
      const line = this.els.get('unread').el;
      if (scroller.scrollHeight - line.offsetTop > scroller.clientHeight) {
        scroller.scrollTop = line.offsetTop - 8;
        this.stick = false;
      } else scroller.scrollTop = scroller.scrollHeight;
    } else if (this.stick) {
      scroller.scrollTop = scroller.scrollHeight;
    }
    show($('btn-latest'), !this.stick);
  }
}

/** A short line for a screen reader announcing a new message. */
export function announceText(e, m) {
  const text = stripIrc(m.text);
  if (m.direction === 'system') return text;
  return `${m.alias || m.sender}${e.kind === 'chat' ? ` in ${e.name}` : ''}: ${text}`;
}

/** The topic line, with its links. */
export function setRichText(el, text) {
  clear(el);
  for (const n of richText(text || '')) el.append(n);
  if (!text) setText(el, '');
}
