// Toasts, dialogs and the small forms: join a chat, new message, add a
// buddy, set the topic, confirm.

import { $, h, clear, setText } from './dom.js';
import { currentConv, protocolName } from './store.js';

export function errText(err) {
  return (err && err.message) || String(err);
}

/** A passing message; `tag` lets a later event take it away (e.g. an account's error once it connects). */
export function toast(text, level = 'info', title = null, tag = null) {
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

export function dropToasts(tag) {
  for (const el of [...$('toasts').children]) if (el.dataset.tag === tag) el.remove();
}

export function field(label, input, hint) {
  return h('label', null, label, input, hint ? h('span', { class: 'hint' }, hint) : null);
}

/** Opens a dialog with its errors cleared; `focus`: the element to focus (default: the first field). */
export function openDialog(id, setup, focus) {
  const d = $(id);
  for (const el of d.querySelectorAll('.error')) setText(el, '');
  if (setup) setup(d);
  d.showModal();
  if (focus) focus.focus();
}

export function confirmDialog(title, text, yes) {
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

export function fillAccountSelect(state, sel, onlyConnected = false) {
  clear(sel);
  const list = [...state.accounts.values()].filter((a) => !onlyConnected || a.status === 'connected');
  const all = list.length ? list : [...state.accounts.values()];
  for (const a of all) {
    sel.appendChild(h('option', { value: String(a.id) },
      `${a.alias || a.username} (${protocolName(state, a.protocol)}${a.status === 'connected' ? '' : `, ${a.status}`})`));
  }
  return all.length;
}

/**
 * The dialogs of the conversation actions. ctx: {state, conn(), openConv(key),
 * openIm(account, name), setView(view), scheduleRender()}
 */
export function bindDialogs(ctx) {
  const { state } = ctx;
  for (const d of document.querySelectorAll('dialog')) {
    for (const b of d.querySelectorAll('[data-close]')) b.addEventListener('click', () => d.close());
    // A prompt that came while this dialog was open shows once it closes.
    d.addEventListener('close', () => setTimeout(ctx.scheduleRender, 0));
  }

  const needAccount = () => {
    if (state.accounts.size) return false;
    toast('Add an IM account first.', 'warning');
    ctx.setView('accounts');
    return true;
  };

  $('btn-join').addEventListener('click', () => {
    if (needAccount()) return;
    openDialog('dlg-join', () => {
      fillAccountSelect(state, $('join-account'), true);
      $('join-name').value = '';
      $('join-password').value = '';
      setText($('join-status'), '');
    }, $('join-name'));
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
      ctx.openConv(existing.key);
      return;
    }
    setText($('join-error'), '');
    try {
      state.pendingJoin = { account, name };
      const params = { account, name };
      const password = $('join-password').value;
      if (password) params.fields = { password };
      const r = await ctx.conn().request('chat.join', params);
      // The dialog stays until the server answers: chat.joined closes it
      // and opens the chat, chat.join_failed shows why here (app.js).
      if (state.pendingJoin) state.pendingJoin = { account, name: r.name || name };
      setText($('join-status'), `Joining ${r.name || name}…`);
    } catch (err) {
      state.pendingJoin = null;
      setText($('join-error'), errText(err));
    }
  });

  // Closed (joined, or Cancel): the "Joining…" line goes; a join still
  // under way opens its chat, or says why not in a toast, when the server answers.
  $('dlg-join').addEventListener('close', () => {
    setText($('join-status'), '');
  });

  $('btn-im').addEventListener('click', () => {
    if (needAccount()) return;
    openDialog('dlg-im', () => {
      fillAccountSelect(state, $('im-account'), true);
      $('im-name').value = '';
    }, $('im-name'));
  });

  $('im-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('im-name').value.trim();
    if (!name) return;
    $('dlg-im').close();
    ctx.openIm(Number($('im-account').value), name);
  });

  $('btn-topic').addEventListener('click', () => {
    const e = currentConv(state);
    if (!e) return;
    openDialog('dlg-topic', () => { $('topic-input').value = e.topic || ''; }, $('topic-input'));
  });

  $('topic-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const e = currentConv(state);
    if (!e) return;
    try {
      await ctx.conn().request('chat.topic', { account: e.account, name: e.name, topic: $('topic-input').value });
      $('dlg-topic').close();
    } catch (err) {
      setText($('topic-error'), errText(err));
    }
  });

  $('btn-add-buddy').addEventListener('click', () => {
    if (needAccount()) return;
    openDialog('dlg-buddy', () => {
      fillAccountSelect(state, $('buddy-account'));
      $('buddy-name').value = '';
      $('buddy-alias').value = '';
    }, $('buddy-name'));
  });

  $('btn-buddy').addEventListener('click', async () => {
    const e = currentConv(state);
    if (!e || e.kind !== 'im') return;
    if (state.buddies.has(e.key)) {
      if (!(await confirmDialog('Remove buddy', `Remove ${e.name} from your buddy list?`, 'Remove'))) return;
      try {
        await ctx.conn().request('buddy.remove', { account: e.account, name: e.name });
      } catch (err) {
        toast(errText(err), 'error');
      }
    } else {
      openDialog('dlg-buddy', () => {
        fillAccountSelect(state, $('buddy-account'));
        $('buddy-account').value = String(e.account);
        $('buddy-name').value = e.name;
        $('buddy-alias').value = '';
      }, $('buddy-alias'));
    }
  });

  $('buddy-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const params = { account: Number($('buddy-account').value), name: $('buddy-name').value.trim() };
    const alias = $('buddy-alias').value.trim();
    if (alias) params.alias = alias;
    if (!params.name) return;
    try {
      await ctx.conn().request('buddy.add', params);
      $('dlg-buddy').close();
    } catch (err) {
      setText($('buddy-error'), errText(err));
    }
  });
}
