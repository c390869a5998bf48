// The client's notification rules (web/notify.js): the same levels as the
// backend, what notifies, what a notification says, recent mentions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  levelFor, mergeMentions, notificationFor, notifies, ownLevel, parseHighlights, parseNotify, recentMentions, shorten,
} from '../../web/notify.js';
import { applyEvent, applyHello, createState, getConv } from '../../web/store.js';

const chat = (name) => ({ kind: 'chat', name });
const im = (name) => ({ kind: 'im', name });

test('the most specific level wins, and the defaults are mentions for chats, all for IMs', () => {
  let n = parseNotify({ levels: [], highlights: [] });
  assert.equal(levelFor(n, 1, 'chat', '#a'), 'mentions');
  assert.equal(levelFor(n, 1, 'im', 'bob'), 'all');
  n = parseNotify({
    levels: [
      { level: 'none' },
      { account: 1, level: 'all' },
      { account: 1, conversation: chat('#a'), level: 'mentions' },
      { account: 2, conversation: im('bob'), level: 'loud' },
    ],
    highlights: ['x', 3],
  });
  assert.deepEqual(n.highlights, ['x']);
  assert.equal(levelFor(n, 1, 'chat', '#a'), 'mentions');
  assert.equal(levelFor(n, 1, 'chat', '#b'), 'all');
  assert.equal(levelFor(n, 2, 'im', 'bob'), 'none', 'an unknown level is ignored');
  assert.equal(ownLevel(n, 1, 'chat', '#a'), 'mentions');
  assert.equal(ownLevel(n, 1, 'chat', '#b'), 'default');
  assert.deepEqual(parseNotify(null), { levels: [], highlights: [] });
});

test('what notifies at each level', () => {
  const mention = { direction: 'in', mention: true };
  const chatter = { direction: 'in' };
  assert.ok(notifies('all', chatter));
  assert.ok(notifies('mentions', mention));
  assert.ok(!notifies('mentions', chatter));
  assert.ok(!notifies('none', mention));
  assert.ok(!notifies('all', { direction: 'out' }), 'not my own messages');
  assert.ok(!notifies('all', { direction: 'in', delayed: true }, 'chat'), 'not a room\'s history replayed');
  assert.ok(notifies('all', { direction: 'in', delayed: true }, 'im'), 'an offline private message counts');
});

test('a notification says who, where and what, shortened, tagged like the push', () => {
  const conv = { account: 3, kind: 'chat', name: '#rust' };
  const n = notificationFor(conv, { sender: 'bob', text: 'alice:   look\nhere', seq: 9 });
  assert.deepEqual(n, { title: 'bob in #rust', body: 'bob: alice: look here', tag: '3/chat/#rust' });
  const a = notificationFor({ account: 3, kind: 'im', name: 'bob' }, { sender: 'bob', alias: 'Bob', text: 'waves', action: true });
  assert.deepEqual([a.title, a.body], ['Bob', '* Bob waves']);
  const long = shorten('é'.repeat(300), 200);
  assert.equal([...long].length, 200);
  assert.ok(long.endsWith('…'));
});

test('recent mentions across conversations, newest first; the store keeps the settings current', () => {
  const state = createState();
  applyHello(state, { accounts: [{ id: 1, username: 'alice' }], conversations: [],
    notify: { levels: [{ account: 1, conversation: chat('#a'), level: 'none' }], highlights: [] } }, { resumed: false });
  assert.equal(levelFor(state.notify, 1, 'chat', '#a'), 'none');
  const ev = (seq, name, text, mention) => ({ op: 'message', seq, time: seq * 1000, account: 1,
    conversation: chat(name), sender: 'bob', text, direction: 'in', mention });
  applyEvent(state, ev(5, '#a', 'alice: one', true));
  applyEvent(state, ev(6, '#b', 'chatter', undefined));
  applyEvent(state, ev(7, '#b', 'alice: two', true));
  const e = getConv(state, 1, chat('#b'));
  assert.deepEqual([e.unread, e.mentions], [2, 1]);
  const r = recentMentions(state.convs.values());
  assert.deepEqual(r.map((m) => [m.conversation.name, m.seq, m.text]), [['#b', 7, 'alice: two'], ['#a', 5, 'alice: one']]);
  assert.equal(recentMentions(state.convs.values(), 1).length, 1);
  // A /me mention stays an action in the list.
  applyEvent(state, { ...ev(9, '#a', 'waves at alice', true), action: true });
  assert.equal(recentMentions(state.convs.values())[0].action, true);
  const fx = applyEvent(state, { op: 'notify.changed', seq: 8, levels: [], highlights: ['rust'] });
  assert.deepEqual(fx, [{ type: 'notifyChanged' }]);
  assert.equal(levelFor(state.notify, 1, 'chat', '#a'), 'mentions');
  assert.deepEqual(state.notify.highlights, ['rust']);
});

test('the snapshot\'s mention counts: the backend\'s for chats, every unread message for IMs', () => {
  const state = createState();
  applyHello(state, { accounts: [{ id: 1, username: 'alice' }], conversations: [
    { account: 1, conversation: chat('#a'), last_seq: 9, read_seq: 2, unread: 5, mentions: 2 },
    { account: 1, conversation: chat('#b'), last_seq: 9, read_seq: 2, unread: 5 },
    { account: 1, conversation: im('bob'), last_seq: 9, read_seq: 2, unread: 3 },
  ] }, { resumed: false });
  assert.deepEqual(['#a', '#b', 'bob'].map((n) => getConv(state, 1, n === 'bob' ? im(n) : chat(n)).mentions), [2, 0, 3]);
});

test('the backend\'s mentions and the loaded ones make one list, each once, newest first', () => {
  const m = (seq) => ({ seq, account: 1, conversation: chat('#a'), text: `m${seq}` });
  assert.deepEqual(mergeMentions([m(9), m(4)], [m(9), m(12)]).map((x) => x.seq), [12, 9, 4]);
  assert.deepEqual(mergeMentions(null, [m(1), m(2)], 1).map((x) => x.seq), [2]);
});

test('highlight words from the text field', () => {
  assert.deepEqual(parseHighlights(' rust, Sapphire ,,rust\nRUST, sapphire'), ['rust', 'Sapphire']);
  assert.deepEqual(parseHighlights(''), []);
});
