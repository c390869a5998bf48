// Prompts from the network (request.open): one at a time, in a dialog.
// Any tab may answer; the first answer wins and the others close theirs.

import { $, h, clear, setText } from './dom.js';
import { errText, field } from './dialogs.js';
import { accountLabel } from './store.js';

export class Prompts {
  /** ctx: {state, conn()} */
  constructor(ctx) {
    this.ctx = ctx;
    this.shown = null; // id of the prompt in the dialog
    const dlg = $('dlg-request');
    $('btn-requests').addEventListener('click', () => {
      this.ctx.state.dismissedRequests.clear();
      this.maybeShow();
    });
    // Escape dismisses the prompt for now (the Prompts button brings it back).
    // Only 'cancel' means the person dismissed it: the 'close' event comes
    // later, as a task, possibly after the dialog already shows the next prompt.
    dlg.addEventListener('cancel', () => {
      if (this.shown !== null) this.ctx.state.dismissedRequests.add(this.shown);
      this.shown = null;
    });
  }

  /** Signed out: nothing is shown (the next sign-in shows the open prompts again). */
  reset() {
    this.shown = null;
    if ($('dlg-request').open) $('dlg-request').close();
  }

  /** The prompt went away (answered elsewhere, or closed by the network). */
  closed(id) {
    if (this.shown === id) {
      this.shown = null;
      $('dlg-request').close();
    }
  }

  /** After a snapshot: a prompt shown here that is no longer open goes away. */
  sync() {
    if (this.shown !== null && !this.ctx.state.requests.has(this.shown)) this.closed(this.shown);
  }

  maybeShow() {
    if (this.shown !== null || document.querySelector('dialog[open]')) return;
    const state = this.ctx.state;
    const next = [...state.requests.values()].sort((a, b) => a.request - b.request)
      .find((r) => !state.dismissedRequests.has(r.request));
    if (next) this.show(next);
  }

  show(r) {
    const state = this.ctx.state;
    this.shown = r.request;
    const title = r.title || (r.kind === 'file' ? 'Choose a file' : r.kind === 'folder' ? 'Choose a folder' : 'Question');
    setText($('request-title'), title);
    setText($('request-account'), typeof r.account === 'number'
      ? `${accountLabel(state, r.account)}${r.who ? ` · ${r.who}` : ''}` : (r.who || ''));
    setText($('request-primary'), r.primary && r.primary !== title ? r.primary : '');
    setText($('request-secondary'), [r.secondary, r.message].filter(Boolean).join('\n'));
    setText($('request-error'), '');
    const body = $('request-body');
    const actions = $('request-actions');
    clear(body);
    clear(actions);
    const more = state.requests.size - 1;
    setText($('request-more'), more > 0 ? `${more} more prompt${more > 1 ? 's' : ''} waiting.` : '');
    const collect = this.body(r, body);
    const isAction = r.kind === 'action';
    for (const a of r.actions || []) {
      const primary = isAction ? a.id === r.default_action : a.id === 0;
      const b = h('button', { type: 'button', class: primary ? 'primary' : null }, a.label);
      b.addEventListener('click', () => this.answer(r, a, isAction, collect, actions));
      actions.appendChild(b);
    }
    $('request-form').onsubmit = (ev) => {
      ev.preventDefault();
      actions.querySelector('.primary')?.click();
    };
    $('dlg-request').showModal();
  }

  async answer(r, a, isAction, collect, actions) {
    const state = this.ctx.state;
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
      await this.ctx.conn().request('request.answer', params);
      state.requests.delete(r.request);
      this.closed(r.request);
    } catch (err) {
      setText($('request-error'), errText(err));
      if (err.code === 'no_such_request') {
        state.requests.delete(r.request);
        this.closed(r.request);
      }
    } finally {
      for (const x of actions.querySelectorAll('button')) x.disabled = false;
    }
  }

  /** The fields of a prompt; returns a function collecting the answer (null: incomplete). */
  body(r, body) {
    if (r.kind === 'input' || r.kind === 'file' || r.kind === 'folder') {
      const def = r.kind === 'input' ? r.default_value : r.kind === 'file' ? r.filename : r.dirname;
      const input = r.multiline
        ? h('textarea', { id: 'request-value', rows: 4 })
        : h('input', { id: 'request-value', type: r.masked ? 'password' : 'text' });
      input.value = def || '';
      body.appendChild(field(r.kind === 'input' ? 'Answer' : 'Path on the server', input));
      return () => ({ value: input.value });
    }
    if (r.kind === 'choice') {
      const group = h('fieldset', { class: 'choices' }, h('legend', null, 'Choose one'));
      for (const c of r.choices || []) {
        group.appendChild(h('label', { class: 'check' },
          h('input', { type: 'radio', name: 'request-choice', value: String(c.value), checked: c.value === r.default }), c.label));
      }
      body.appendChild(group);
      return () => {
        const sel = group.querySelector('input:checked');
        return sel ? { value: Number(sel.value) } : null;
      };
    }
    if (r.kind === 'fields') {
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
      return () => ({ fields: Object.fromEntries(getters.map((g) => g())) });
    }
    return () => ({});
  }
}
