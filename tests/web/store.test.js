// Unit tests of web/store.js, web/input.js and web/settings.js (pure: no DOM).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accountNick, applyConversationsPage, applyEvent, applyHello, convKey, createState, hiddenFromJson, hiddenToJson, hide, listGroups,
  orderedConvs, resetState, sortedMembers, stepConv, totalUnread,
} from '../../web/store.js';
import { InputHistory, complete, completionNames } from '../../web/input.js';
import { DEFAULTS, loadSettings, parseSettings, saveSettings } from '../../web/settings.js';

const chat = (name) => ({ kind: 'chat', name });
const im = (name) => ({ kind: 'im', name });
let seq = 100;
const message = (account, conversation, text, extra = {}) => ({
  op: 'message', seq: ++seq, time: 1000 + seq, account, conversation, sender: 'bob', text, direction: 'in', ...extra,
});

function signedIn() {
  const s = createState();
  applyHello(s, {
    accounts: [{ id: 2, username: 'alice@xmpp' }, { id: 1, username: 'alice@irc' }],
    conversations: [
      { account: 1, conversation: chat('#b'), unread: 2, read_seq: 5, last_seq: 7 },
      { account: 1, conversation: im('zed'), unread: 0, read_seq: 3, last_seq: 3 },
      { account: 2, conversation: chat('room@muc'), unread: 0, read_seq: 1, last_seq: 1 },
    ],
    chats: [{ account: 1, conversation: chat('#b'), topic: 'T', members: [{ name: 'bob', flags: [] }, { name: 'alice', flags: ['op'] }] }],
  }, { resumed: false });
  return s;
}

describe('store', () => {
  it('merges the pages of older conversations the snapshot left out', () => {
    const s = createState();
    applyHello(s, {
      accounts: [{ id: 1, username: 'a' }],
      conversations: [{ account: 1, conversation: im('new'), unread: 0, read_seq: 50, last_seq: 50 }],
      conversations_next: '50.9',
    }, { resumed: false });
    assert.equal(s.convsNext, '50.9');
    assert.equal(s.convs.size, 1);
    // An event makes `old1` newer than the page says while it was on its way.
    applyEvent(s, { ...message(1, im('old1'), 'hi'), seq: 60 });
    const fx = applyConversationsPage(s, {
      conversations: [
        { account: 1, conversation: im('old1'), unread: 0, read_seq: 10, last_seq: 10 },
        { account: 1, conversation: im('old2'), unread: 3, read_seq: 1, last_seq: 8 },
        { account: 7, conversation: im('gone'), unread: 1, read_seq: 0, last_seq: 5 },
      ],
      next: '8.3',
    });
    assert.deepEqual(fx, []);
    assert.equal(s.convs.size, 3, 'the unknown account is ignored');
    const old1 = s.convs.get(convKey(1, 'im', 'old1'));
    assert.equal(old1.last_seq, 60, 'the newer state is kept');
    assert.equal(old1.unread, 1);
    assert.equal(s.convs.get(convKey(1, 'im', 'old2')).unread, 3);
    assert.equal(s.convsNext, '8.3');
    applyConversationsPage(s, { conversations: [], next: null });
    assert.equal(s.convsNext, null, 'no more pages');
    // A hello without a cursor: everything is there.
    applyHello(s, { accounts: [{ id: 1, username: 'a' }], conversations: [] }, { resumed: true });
    assert.equal(s.convsNext, null);
  });

  it('folds the hello snapshot', () => {
    const s = signedIn();
    const b = s.convs.get(convKey(1, 'chat', '#b'));
    assert.equal(b.unread, 2);
    assert.equal(b.joined, true);
    assert.equal(b.topic, 'T');
    assert.equal(b.members.size, 2);
    assert.equal(totalUnread(s), 2);
  });

  it('counts messages once, in seq order, and not replayed ones twice', () => {
    const s = signedIn();
    const m = message(1, chat('#b'), 'hi');
    applyEvent(s, m);
    applyEvent(s, m);
    const b = s.convs.get(convKey(1, 'chat', '#b'));
    assert.equal(b.messages.length, 1);
    assert.equal(b.unread, 3);
    applyEvent(s, message(1, chat('#b'), 'missed'), { replayed: true });
    assert.equal(b.unread, 3, 'the snapshot counted the replayed one');
    assert.equal(b.messages.length, 2);
    applyEvent(s, { op: 'read', seq: ++seq, account: 1, conversation: chat('#b'), read_seq: seq });
    assert.equal(b.unread, 0);
  });

  it('keeps the list order stable: by account, chats first, by name', () => {
    const s = signedIn();
    const names = () => orderedConvs(s).map((c) => c.name);
    assert.deepEqual(names(), ['#b', 'zed', 'room@muc']);
    applyEvent(s, message(1, im('amy'), 'hello'));
    applyEvent(s, message(1, chat('#a'), 'x'));
    assert.deepEqual(names(), ['#a', '#b', 'amy', 'zed', 'room@muc']);
    applyEvent(s, message(1, chat('#b'), 'bob entered the room.', { direction: 'system' }));
    applyEvent(s, { op: 'chat.members', seq: ++seq, account: 1, conversation: chat('#b'), added: [{ name: 'carol', flags: [] }] });
    assert.deepEqual(names(), ['#a', '#b', 'amy', 'zed', 'room@muc'], 'joins and messages do not reorder');
    assert.deepEqual(listGroups(s).map((g) => g.account), [1, 2]);
  });

  it('steps to the next conversation and the next unread one', () => {
    const s = signedIn();
    s.current = convKey(1, 'im', 'zed');
    assert.equal(stepConv(s, 1), convKey(2, 'chat', 'room@muc'));
    assert.equal(stepConv(s, -1), convKey(1, 'chat', '#b'));
    assert.equal(stepConv(s, 1, true), convKey(1, 'chat', '#b'), 'wraps to the one with unread messages');
    s.current = convKey(1, 'chat', '#b');
    assert.equal(stepConv(s, 1, true), null, 'no other unread');
  });

  it('closes a conversation until a new message arrives, across a reload', () => {
    const s = signedIn();
    const zed = convKey(1, 'im', 'zed');
    s.current = zed;
    s.view = 'conv';
    hide(s, zed);
    assert.equal(s.current, null);
    assert.ok(!orderedConvs(s).some((c) => c.key === zed));
    // "Reload": the closed list comes back from storage.
    const stored = JSON.parse(JSON.stringify(hiddenToJson(s)));
    const s2 = createState();
    hiddenFromJson(s2, stored);
    applyHello(s2, { accounts: [{ id: 1, username: 'a' }], conversations: [{ account: 1, conversation: im('zed'), unread: 0, read_seq: 3, last_seq: 3 }] }, { resumed: false });
    assert.ok(!orderedConvs(s2).some((c) => c.key === zed), 'still closed after a reload');
    const fx = applyEvent(s2, message(1, im('zed'), 'are you there?'));
    assert.ok(fx.some((f) => f.type === 'hiddenChanged'));
    assert.ok(orderedConvs(s2).some((c) => c.key === zed), 'a new message brings it back');
    // A message that arrived while no tab was open brings it back too.
    const s3 = createState();
    hiddenFromJson(s3, stored);
    applyHello(s3, { accounts: [{ id: 1, username: 'a' }], conversations: [{ account: 1, conversation: im('zed'), unread: 1, read_seq: 3, last_seq: 9 }] }, { resumed: false });
    assert.ok(orderedConvs(s3).some((c) => c.key === zed));
    hiddenFromJson(s3, 'garbage');
    assert.equal(s3.hidden.size, 0);
  });

  it('reports effects instead of doing them', () => {
    const s = signedIn();
    s.pendingJoin = { account: 1, name: '#New' };
    const fx = applyEvent(s, { op: 'chat.joined', seq: ++seq, account: 1, conversation: chat('#new') });
    assert.deepEqual(fx, [{ type: 'open', key: convKey(1, 'chat', '#new') }]);
    applyEvent(s, { op: 'request.open', seq: 50, request: 50, kind: 'action' });
    assert.ok(s.requests.has(50));
    assert.deepEqual(applyEvent(s, { op: 'request.close', seq: ++seq, request: 50 }), [{ type: 'requestClosed', id: 50 }]);
    const err = applyEvent(s, { op: 'account.status', seq: ++seq, account: 1, status: 'error', message: 'refused' });
    assert.equal(err[0].type, 'toast');
    assert.equal(err[0].tag, 'account-1');
  });

  it('resets everything a signed-out person leaves behind', () => {
    const s = signedIn();
    s.dismissedRequests.add(3);
    s.drafts.set('x', 'y');
    s.protocols = [{ id: 'prpl-irc' }];
    resetState(s);
    assert.equal(s.convs.size, 0);
    assert.equal(s.dismissedRequests.size, 0);
    assert.equal(s.drafts.size, 0);
    assert.equal(s.protocols.length, 1, 'the protocol list is not personal');
  });

  it('sorts and filters members', () => {
    const s = signedIn();
    const b = s.convs.get(convKey(1, 'chat', '#b'));
    assert.deepEqual(sortedMembers(b).map((m) => m.name), ['alice', 'bob']);
    assert.deepEqual(sortedMembers(b, 'BO').map((m) => m.name), ['bob']);
  });
});

describe('composer helpers', () => {
  it('complete a nick at the start with ": ", elsewhere with " ", and cycle', () => {
    const names = ['bob', 'bobby', 'carol'];
    let r = complete('bo', 2, names);
    assert.equal(r.text, 'bob: ');
    assert.equal(r.caret, 5);
    r = complete(r.text, r.caret, names, r.state);
    assert.equal(r.text, 'bobby: ');
    r = complete(r.text, r.caret, names, r.state);
    assert.equal(r.text, 'bob: ', 'cycles back');
    r = complete('hi CA', 5, names);
    assert.equal(r.text, 'hi carol ');
    r = complete('say bo there', 6, names);
    assert.equal(r.text, 'say bob there');
    r = complete(r.text, r.caret, names, r.state);
    assert.equal(r.text, 'say bobby there');
    assert.equal(complete('zz', 2, names), null);
    assert.equal(complete('a ', 2, names), null, 'nothing to complete after a space');
  });

  it('name recent speakers first, never oneself', () => {
    const e = { kind: 'chat', name: '#x', members: new Map([['alice', {}], ['zoe', {}], ['bob', {}]]),
      messages: [{ direction: 'in', sender: 'zoe' }, { direction: 'in', sender: 'bob' }] };
    assert.deepEqual(completionNames(e, 'alice'), ['bob', 'zoe']);
  });

  it('browse the input history and bring back the unsent text', () => {
    const h = new InputHistory();
    h.push('one');
    h.push('two');
    assert.equal(h.up('draft'), 'two');
    assert.equal(h.up('two'), 'one');
    assert.equal(h.up('one'), null, 'no older entry');
    assert.equal(h.down(), 'two');
    assert.equal(h.down(), 'draft');
    assert.equal(h.down(), null);
  });
});

describe('settings', () => {
  it('fall back to the defaults for anything unknown', () => {
    assert.deepEqual(parseSettings('not json'), DEFAULTS);
    assert.deepEqual(parseSettings('{"theme":"neon","clock":"24","hideJoins":"yes"}'), { ...DEFAULTS, clock: '24' });
  });
  it('round-trip through storage', () => {
    const store = new Map();
    const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
    saveSettings(storage, { theme: 'dark', clock: '12', hideJoins: true, notifications: true });
    assert.deepEqual(loadSettings(storage), { theme: 'dark', clock: '12', hideJoins: true, notifications: true });
  });
});

describe('accountNick', () => {
  it('is the nick the server gave, else the user name before @', () => {
    assert.equal(accountNick({ username: 'carol@irc.example.org' }), 'carol');
    assert.equal(accountNick({ username: 'carol@irc.example.org', nick: 'carol1' }), 'carol1');
    assert.equal(accountNick({ username: 'plain' }), 'plain');
  });
});

describe('sending states and refused joins', () => {
  it('a queued line becomes sent, also when both are replayed', () => {
    for (const replayed of [false, true]) {
      const s = signedIn();
      const q = message(1, chat('#b'), 'later', { direction: 'out', sender: 'alice', queued: true, action: true });
      applyEvent(s, q, { replayed });
      const e = s.convs.get(convKey(1, 'chat', '#b'));
      const m = e.messages.find((x) => x.seq === q.seq);
      assert.equal(m.queued, true);
      assert.equal(m.action, true, 'actions keep their flag');
      applyEvent(s, { op: 'message.sent', seq: ++seq, account: 1, conversation: chat('#b'), message: q.seq }, { replayed });
      assert.equal(m.queued, false);
      assert.equal(m.wasQueued, true);
      assert.equal(m.error, undefined);
      const f = message(1, chat('#b'), 'never', { direction: 'out', queued: true });
      applyEvent(s, f, { replayed });
      applyEvent(s, { op: 'message.sent', seq: ++seq, account: 1, conversation: chat('#b'), message: f.seq, error: 'not sent' }, { replayed });
      assert.equal(e.messages.find((x) => x.seq === f.seq).error, 'not sent');
    }
  });

  it('a refused join the person asked for is reported to the dialog, others as a toast', () => {
    const s = signedIn();
    s.pendingJoin = { account: 1, name: 'club' };
    const fx = applyEvent(s, { op: 'chat.join_failed', seq: ++seq, account: 1, conversation: chat('#club'), message: 'Cannot join channel (+i) (473)' });
    assert.deepEqual(fx, [{ type: 'joinFailed', account: 1, name: '#club', message: 'Cannot join channel (+i) (473)' }]);
    assert.equal(s.pendingJoin, null);
    const fx2 = applyEvent(s, { op: 'chat.join_failed', seq: ++seq, account: 1, conversation: chat('#other'), message: 'banned' });
    assert.equal(fx2[0].type, 'toast');
  });
});
