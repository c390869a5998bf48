// The composer: one draft per conversation, Tab completion of nicks and
// of the backend's slash commands, Up/Down through what was sent, typing
// notifications, sending (asking first before a long paste to IRC, and
// switching to the conversation a command opened).

import { $, setText } from './dom.js';
import { completeCommand, joinTarget, pasteCheck } from './commands.js';
import { confirmDialog } from './dialogs.js';
import { InputHistory, complete, completionNames } from './input.js';
import { accountNick, currentConv, getConv } from './store.js';

export class Composer {
  /** ctx: {state, conn(), errText(err), onSent(e), openConv(key)} */
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
    // Conversation key -> [{name, help}] from the `commands` op (or the
    // promise of it): fetched on the first Tab after a "/".
    this.commands = new Map();
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
      // In the first word of a "/" line: a command name.
      const head = box.value.slice(0, box.selectionStart);
      const cycling = this.tab && this.tab.text === box.value && this.tab.caret === box.selectionStart
        && this.tab.prefix.startsWith('/');
      if (cycling || (head.startsWith('/') && !head.startsWith('//') && !/\s/.test(head))) {
        ev.preventDefault();
        this.completeCommand(e);
        return;
      }
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

  /** Tab in the first word of a "/" line: complete from the backend's commands for `e`. */
  async completeCommand(e) {
    const box = this.box;
    const text = box.value;
    const caret = box.selectionStart;
    let list = this.commands.get(e.key);
    if (!list) {
      list = this.ctx.conn().request('commands', { account: e.account, conversation: { kind: e.kind, name: e.name } })
        .then((r) => r.commands)
        .catch(() => null);
      this.commands.set(e.key, list);
    }
    list = await list;
    if (!list) {
      this.commands.delete(e.key); // try again next time
      return;
    }
    this.commands.set(e.key, list);
    // The person may have typed on meanwhile.
    if (box.value !== text || box.selectionStart !== caret || this.key !== e.key) return;
    const r = completeCommand(text, caret, list, this.tab);
    if (!r) return;
    box.value = r.text;
    box.setSelectionRange(r.caret, r.caret);
    this.tab = r.state;
    this.ctx.state.drafts.set(e.key, box.value);
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
    const state = this.ctx.state;
    const account = state.accounts.get(e.account);
    const paste = pasteCheck(text, account, e.name);
    if (paste && !(await confirmDialog(`Send ${paste.lines} lines?`, paste.question, `Send ${paste.lines} lines`))) {
      box.focus();
      return; // the text stays in the composer
    }
    $('send').disabled = true;
    const join = joinTarget(text, account && account.protocol);
    try {
      // "/join #x": the chat opens once the server confirms, as from the dialog.
      if (join) state.pendingJoin = { account: e.account, name: join };
      const r = await this.ctx.conn().request('conversation.send', { account: e.account, conversation: { kind: e.kind, name: e.name }, text });
      if (r && r.opened) {
        // "/query bob", "/msg bob …": go to the conversation it opened.
        this.ctx.openConv(getConv(state, e.account, r.opened).key);
      }
      this.history.push(text);
      if (box.value === text && this.key === e.key) box.value = '';
      this.ctx.state.drafts.delete(e.key);
      clearTimeout(this.pausedTimer);
      this.typingSent = { key: e.key, state: 'none', at: Date.now() };
      this.ctx.onSent(e);
    } catch (err) {
      if (join) state.pendingJoin = null;
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
