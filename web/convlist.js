// The sidebar: conversations grouped by account (store.listGroups, a stable
// order) and buddies. Items are kept and only changed ones rebuilt: a
// message in one channel touches one list item, not the whole list.

import { $, h, show } from './dom.js';
import { accountLabel, listGroups } from './store.js';

/** Puts `children` into `parent` in this order, moving only what is out of place. */
function placeInOrder(parent, children) {
  let cursor = parent.firstChild;
  for (const c of children) {
    if (c === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(c, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

export class ConvList {
  /** ctx: {state, openConv(key), openIm(account, name), loadMoreConvs()} */
  constructor(ctx) {
    this.ctx = ctx;
    this.reset();
  }

  reset() {
    this.items = new Map(); // conv key -> {li, sig}
    this.groups = new Map(); // account -> {li, ul, title, sig}
    this.buddySig = null;
    this.more = null;
    $('conv-list').replaceChildren();
    $('buddy-list').replaceChildren();
  }

  item(e, state) {
    const current = e.key === state.current && state.view === 'conv';
    const sig = JSON.stringify([e.name, e.unread, e.mentions, current, e.joined, e.kind]);
    let r = this.items.get(e.key);
    if (r && r.sig === sig) return r.li;
    const label = e.kind === 'chat' ? e.name.replace(/^#/, '') : e.name;
    // The accessible name is the visible text (plus "unread" for the count).
    const btn = h('button', { type: 'button', class: 'conv-btn', 'aria-current': current ? 'true' : null,
      onclick: () => this.ctx.openConv(e.key) },
    h('span', { class: `kind ${e.kind}`, 'aria-hidden': 'true' }, e.kind === 'chat' ? '#' : '@'),
    h('span', { class: 'conv-name' }, label),
    e.kind === 'chat' && !e.joined ? h('span', { class: 'conv-acct' }, '(left)') : null,
    e.mentions ? h('span', { class: 'badge mention-count', title: 'Mentions' }, `@${e.mentions}`) : null,
    e.mentions ? h('span', { class: 'sr-only' }, ' mentions,') : null,
    e.unread ? h('span', { class: `badge unread${e.mentions ? ' mention' : ''}` }, String(e.unread)) : null,
    e.unread ? h('span', { class: 'sr-only' }, ' unread') : null);
    const li = h('li', { class: `conv-item${current ? ' current' : ''}${e.unread ? ' has-unread' : ''}`,
      dataset: { name: e.name, key: e.key } }, btn);
    if (r) r.li.replaceWith(li);
    this.items.set(e.key, { li, sig });
    return li;
  }

  render() {
    const state = this.ctx.state;
    const groups = listGroups(state);
    show($('conv-empty'), groups.length === 0 && !state.convsNext);
    const seen = new Set();
    const groupEls = [];
    for (const g of groups) {
      let gr = this.groups.get(g.account);
      const title = accountLabel(state, g.account);
      if (!gr) {
        const t = h('h3', { class: 'acct-title' }, title);
        const ul = h('ul', { class: 'conv-group-list', 'aria-label': title });
        gr = { li: h('li', { class: 'acct-group' }, t, ul), ul, t, title };
        this.groups.set(g.account, gr);
      } else if (gr.title !== title) {
        gr.t.textContent = title;
        gr.ul.setAttribute('aria-label', title);
        gr.title = title;
      }
      groupEls.push(gr.li);
      placeInOrder(gr.ul, g.convs.map((e) => {
        seen.add(e.key);
        return this.item(e, state);
      }));
    }
    // The snapshot holds the newest conversations: an entry fetches older ones.
    if (state.convsNext) groupEls.push(this.moreItem(state));
    placeInOrder($('conv-list'), groupEls);
    for (const k of this.items.keys()) if (!seen.has(k)) this.items.delete(k);
    for (const [a, gr] of this.groups) if (!groups.some((g) => g.account === a)) this.groups.delete(a) && gr.li.remove();
    this.renderBuddies(state);
  }

  moreItem(state) {
    if (!this.more) {
      this.moreBtn = h('button', { type: 'button', id: 'more-convs', class: 'conv-btn more-convs',
        onclick: () => this.ctx.loadMoreConvs() }, 'More conversations');
      this.more = h('li', { class: 'acct-group' }, this.moreBtn);
    }
    this.moreBtn.disabled = state.convsLoading;
    this.moreBtn.textContent = state.convsLoading ? 'Loading conversations…' : 'More conversations';
    return this.more;
  }

  renderBuddies(state) {
    const list = [...state.buddies.values()].sort((a, b) =>
      (b.online - a.online) || (a.alias || a.name).localeCompare(b.alias || b.name));
    const sig = JSON.stringify(list.map((b) => [b.account, b.name, b.alias, b.online, b.status, b.message]));
    if (sig === this.buddySig) return;
    this.buddySig = sig;
    show($('buddy-empty'), list.length === 0);
    $('buddy-list').replaceChildren(...list.map((b) => {
      const presence = !b.online ? 'offline' : (b.status && b.status !== 'available' ? 'away' : 'online');
      return h('li', { class: 'buddy' },
        h('button', { type: 'button', class: 'conv-btn', onclick: () => this.ctx.openIm(b.account, b.name) },
          h('span', { class: `dot ${presence}`, role: 'img', 'aria-label': presence }),
          h('span', { class: 'conv-name' }, b.alias || b.name),
          b.message ? h('span', { class: 'conv-acct' }, b.message) : null));
    }));
  }
}
