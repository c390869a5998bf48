// The accounts page: the account list, the add/edit form built from the
// protocol's own description (user name splits, options), and the status.

import { $, h, clear, setText, show } from './dom.js';
import { confirmDialog, errText, field, openDialog, toast } from './dialogs.js';
import { accountNick, protocolName } from './store.js';

/** ctx: {state, conn(), setView(view)}. Returns renderAccounts(). */
export function bindAccounts(ctx) {
  const { state } = ctx;
  let editing = null; // account being edited, or null when adding

  async function ensureProtocols() {
    if (!state.protocols) {
      const r = await ctx.conn().request('protocols');
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
          h('span', { class: 'muted' }, ` ${protocolName(state, a.protocol)}${a.alias ? ` · ${a.username}` : ''}`),
          // The server gave another nick (the one asked for was taken).
          a.nick ? h('span', { class: 'muted account-nick' }, ` · connected as ${accountNick(a)}`) : null,
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
      await ctx.conn().request('account.set_enabled', { account: a.id, enabled });
    } catch (err) {
      toast(errText(err), 'error');
    }
  }

  async function removeAccount(a) {
    if (!(await confirmDialog('Remove account',
      `Remove ${a.username} (${protocolName(state, a.protocol)})? Its history stays searchable until you delete it on the server.`, 'Remove'))) return;
    try {
      await ctx.conn().request('account.remove', { account: a.id });
    } catch (err) {
      toast(errText(err), 'error');
    }
  }

  $('btn-add-account').addEventListener('click', () => openAccountForm(null));

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
      await ctx.conn().request(op, params);
      $('dlg-account').close();
      ctx.setView('accounts');
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
      await ctx.conn().request('status.set', params);
      setText($('status-result'), 'Status set.');
    } catch (err) {
      setText($('status-result'), `Could not set the status: ${errText(err)}`);
    }
  });

  return renderAccounts;
}
