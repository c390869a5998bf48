// The composer: one draft per conversation, Tab completion of nicks,
// Up/Down through what was sent, typing notifications, sending.

import { $, setText } from './dom.js';
import { InputHistory, complete, completionNames } from './input.js';
import { accountNick, currentConv } from './store.js';

export class Composer {
  /** ctx: {state, conn(), errText(err), onSent(e)} */
  constructor(ctx) {
    this.ctx = ctx;
    this.box = $('compose');
    this.history = new InputHistory();
    this.reset();
    this.box.addEventListener('input', () => this.onInput());
    this.box.addEventListener('keydown', (ev) => this.onKey(ev));
    $('composer').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
  }

  reset() {
    this.history = new InputHistory();
    this.tab = null;
    this.key = null;
    this.typingSent = { key: null, state: 'none', at: 0 };
    clearTimeout(this.pausedTimer);
    this.box.value = '';
  }

  /** Switching conversation: keep the draft of the one left, bring back the one of `e`. */
  switchTo(e) {
    if (this.key === e.key) return;
    const state = this.ctx.state;
    if (this.key) {
      if (this.box.value) state.drafts.set(this.key, this.box.value);
      else state.drafts.delete(this.key);
    }
    this.key = e.key;
    this.box.value = state.drafts.get(e.key) || '';
    this.tab = null;
    this.history.reset();
    setText($('compose-error'), '');
  }

  onInput() {
    this.tab = null;
    this.history.reset();
    const e = currentConv(this.ctx.state);
    if (!e) return;
    if (this.box.value) this.ctx.state.drafts.set(e.key, this.box.value);
    else this.ctx.state.drafts.delete(e.key);
    if (e.kind !== 'im') return;
    clearTimeout(this.pausedTimer);
    if (this.box.value) {
      this.sendTyping(e, 'typing');
      this.pausedTimer = setTimeout(() => this.sendTyping(e, 'paused'), 5000);
    } else {
      this.sendTyping(e, 'none');
    }
  }

  onKey(ev) {
    const box = this.box;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('composer').requestSubmit();
    } else if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      const e = currentConv(this.ctx.state);
      if (!e || box.selectionStart !== box.selectionEnd) return;
      const me = this.ctx.state.accounts.get(e.account);
      const self = me ? accountNick(me) : null;
      const r = complete(box.value, box.selectionStart, completionNames(e, self), this.tab);
      if (!r) return; // nothing to complete: Tab moves the focus as usual
      ev.preventDefault();
      box.value = r.text;
      box.setSelectionRange(r.caret, r.caret);
      this.tab = r.state;
      this.ctx.state.drafts.set(e.key, box.value);
    } else if ((ev.key === 'ArrowUp' || ev.key === 'ArrowDown') && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      // Only from the first line (Up) or the last line (Down): moving in a
      // multi-line draft stays possible.
      const before = box.value.slice(0, box.selectionStart);
      const after = box.value.slice(box.selectionEnd);
      if (ev.key === 'ArrowUp' && before.includes('\n')) return;
      if (ev.key === 'ArrowDown' && after.includes('\n')) return;
      const next = ev.key === 'ArrowUp' ? this.history.up(box.value) : this.history.down();
      if (next === null) return;
      ev.preventDefault();
      box.value = next;
      box.setSelectionRange(next.length, next.length);
    }
  }

  sendTyping(e, st) {
    const conn = this.ctx.conn();
    if (!e || e.kind !== 'im' || !conn || !conn.ready) return;
    const now = Date.now();
    const t = this.typingSent;
    if (t.key === e.key && t.state === st && (st !== 'typing' || now - t.at < 4000)) return;
    this.typingSent = { key: e.key, state: st, at: now };
    conn.request('typing', { account: e.account, conversation: { kind: 'im', name: e.name }, state: st }).catch(() => {});
  }

  setEnabled(canSend, placeholder) {
    this.box.disabled = !canSend;
    $('send').disabled = !canSend;
    this.box.placeholder = placeholder;
  }

  async send() {
    const e = currentConv(this.ctx.state);
    const box = this.box;
    const text = box.value;
    if (!e || !text.trim()) return;
    setText($('compose-error'), '');
    $('send').disabled = true;
    try {
      await this.ctx.conn().request('conversation.send', { account: e.account, conversation: { kind: e.kind, name: e.name }, text });
      this.history.push(text);
      if (box.value === text && this.key === e.key) box.value = '';
      this.ctx.state.drafts.delete(e.key);
      clearTimeout(this.pausedTimer);
      this.typingSent = { key: e.key, state: 'none', at: Date.now() };
      this.ctx.onSent(e);
    } catch (err) {
      const msg = err.code === 'disconnected'
        ? 'The connection dropped while sending; check whether the message arrived before sending it again.'
        : this.ctx.errText(err);
      setText($('compose-error'), `Not sent: ${msg}`);
    } finally {
      $('send').disabled = false;
      box.focus();
    }
  }
}
