// Unit tests of web/format.js (pure: no DOM). Run: node --test tests/web/
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NICK_COLOURS, buildRows, classifySystem, dayKey, dayLabel, fmtTime, linkify, messageTime, nickColour,
  localizeTimes, parseIrc, richSegments, segmentClasses, stripIrc, summarizeEvents,
} from '../../web/format.js';

describe('nick colours', () => {
  it('are stable, in range, and ignore case and trailing underscores', () => {
    const c = nickColour('bob');
    assert.equal(nickColour('bob'), c);
    assert.equal(nickColour('Bob'), c);
    assert.equal(nickColour('bob_'), c);
    for (const n of ['alice', 'carol0', 'x', '', 'ünïcødé']) {
      const i = nickColour(n);
      assert.ok(Number.isInteger(i) && i >= 0 && i < NICK_COLOURS, `${n}: ${i}`);
    }
  });
  it('spread over the palette', () => {
    const used = new Set();
    for (let i = 0; i < 200; i++) used.add(nickColour(`user${i}`));
    assert.ok(used.size >= NICK_COLOURS - 1, `only ${used.size} colours used`);
    assert.notEqual(nickColour('alice'), nickColour('bob'));
  });
});

describe('IRC formatting', () => {
  it('leaves plain text alone', () => {
    assert.deepEqual(parseIrc('plain'), [{ text: 'plain' }]);
  });
  it('toggles bold, italic, underline and resets', () => {
    assert.deepEqual(parseIrc('a\x02b\x1dc\x02d\x0fe\x1ff'), [
      { text: 'a' }, { text: 'b', bold: true }, { text: 'c', bold: true, italic: true },
      { text: 'd', italic: true }, { text: 'e' }, { text: 'f', underline: true },
    ]);
  });
  it('reads colours, with and without a background, and 99 as default', () => {
    assert.deepEqual(parseIrc('\x034red\x03 plain \x0312,1blue on black\x0399,99x'), [
      { text: 'red', fg: 4 }, { text: ' plain ' }, { text: 'blue on black', fg: 12, bg: 1 }, { text: 'x' },
    ]);
    assert.deepEqual(parseIrc('\x03,5x'), [{ text: ',5x' }], 'a comma without a colour is text');
    assert.deepEqual(parseIrc('\x031234'), [{ text: '34', fg: 12 }], 'two digits at most');
  });
  it('drops hex colours and reverse, never shows a control code', () => {
    assert.equal(stripIrc('\x04ff0000red\x16rev\x11mono\x1estrike'), 'redrevmonostrike');
    assert.doesNotMatch(stripIrc('\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f'), /[\x00-\x1f]/);
  });
  it('maps segments to classes only', () => {
    assert.deepEqual(segmentClasses({ text: 'x', bold: true, italic: true, fg: 4, bg: 50 }), ['irc-b', 'irc-i', 'irc-fg4']);
  });
});

describe('links', () => {
  const links = (t) => linkify(t).filter((s) => s.href).map((s) => [s.text, s.href]);
  it('links http(s), www. and irc://', () => {
    assert.deepEqual(links('see https://example.org/x and www.debian.org, or irc://irc.libera.chat/#debian.'), [
      ['https://example.org/x', 'https://example.org/x'],
      ['www.debian.org', 'https://www.debian.org/'],
      ['irc://irc.libera.chat/#debian', 'irc://irc.libera.chat/#debian'],
    ]);
  });
  it('keeps balanced parentheses and drops an unbalanced closing one', () => {
    assert.deepEqual(links('https://en.wikipedia.org/wiki/Foo_(bar)'), [['https://en.wikipedia.org/wiki/Foo_(bar)', 'https://en.wikipedia.org/wiki/Foo_(bar)']]);
    assert.deepEqual(links('(see https://example.org/a)'), [['https://example.org/a', 'https://example.org/a']]);
    assert.deepEqual(links('https://example.org/a?b=1&c=<2>'), [['https://example.org/a?b=1&c=', 'https://example.org/a?b=1&c=']]);
  });
  it('links nothing else', () => {
    assert.deepEqual(links('javascript:alert(1) data:text/html,x ftp://x www. mailto:a@b'), []);
    assert.deepEqual(linkify('no links'), [{ text: 'no links' }]);
  });
  it('keeps every character of the text', () => {
    const t = 'a https://x.org/(1) b www.y.org. c';
    assert.equal(linkify(t).map((s) => s.text).join(''), t);
  });
  it('combines with formatting', () => {
    assert.deepEqual(richSegments('\x02go https://x.org\x02 now'), [
      { text: 'go ', bold: true }, { text: 'https://x.org', href: 'https://x.org/', bold: true }, { text: ' now' },
    ]);
  });
});

describe('time', () => {
  const t = new Date(2026, 11, 1, 15, 7).getTime();
  it('has one format, 12 or 24 h by setting', () => {
    assert.match(fmtTime(t, '24'), /^15.07$/);
    assert.match(fmtTime(t, '12'), /03.07\s?PM/i);
  });
  it('labels days', () => {
    assert.equal(dayLabel(t, t + 3600e3), 'Today');
    assert.equal(dayLabel(t, t + 24 * 3600e3), 'Yesterday');
    assert.match(dayLabel(t, t + 5 * 24 * 3600e3), /2026/);
    assert.equal(dayKey(t), '2026-12-01');
  });
  it('rewrites libpurple\'s times in system lines', () => {
    assert.match(localizeTimes('Topic for #x set by bob at 22:16:31 on 12/01/26', '12'), /^Topic for #x set by bob at 10.16\sPM on Dec 1, 2026$/);
    assert.equal(localizeTimes('at 99:99:99 on 13/45/26'), 'at 99:99:99 on 13/45/26');
  });
  it('uses sent for delayed messages', () => {
    assert.equal(messageTime({ time: 5000, delayed: true, sent: 1000 }), 1000);
    assert.equal(messageTime({ time: 5000 }), 5000);
  });
});

describe('joins, parts and quits', () => {
  it('are recognised in libpurple system lines', () => {
    assert.deepEqual(classifySystem('bob [~bob@127.0.0.1] entered the room.'), { type: 'join', nick: 'bob' });
    assert.deepEqual(classifySystem('bob left the room.'), { type: 'part', nick: 'bob' });
    assert.deepEqual(classifySystem('bob left the room (Quit: bye).'), { type: 'quit', nick: 'bob' });
    assert.deepEqual(classifySystem('bob is now known as bobby'), { type: 'nick', nick: 'bob', to: 'bobby' });
    assert.equal(classifySystem('The topic is: hi'), null);
  });
  it('are summarised', () => {
    assert.equal(summarizeEvents([{ type: 'join' }, { type: 'join' }, { type: 'join' }, { type: 'part' }, { type: 'part' }]), '3 joined, 2 left');
  });
});

describe('rows', () => {
  const day1 = new Date(2026, 10, 30, 10, 0).getTime();
  const day2 = new Date(2026, 11, 1, 10, 0).getTime();
  let seq = 0;
  const msg = (time, sender, text, direction = 'in') => ({ seq: ++seq, time, sender, text, direction });
  const msgs = [
    msg(day1, 'bob', 'one'), msg(day1 + 1000, 'bob', 'two'), msg(day1 + 2000, 'carol', 'three'),
    msg(day1 + 3000, '', 'dave entered the room.', 'system'), msg(day1 + 4000, '', 'erin entered the room.', 'system'),
    msg(day1 + 5000, '', 'dave left the room.', 'system'),
    msg(day1 + 6000, 'carol', 'four'), msg(day2, 'carol', 'five'), msg(day2 + 1000, '', 'frank entered the room.', 'system'),
  ];
  it('separate days, group senders and condense membership runs', () => {
    const rows = buildRows(msgs, { now: day2 });
    assert.deepEqual(rows.map((r) => r.type + (r.cont ? '+' : '')), ['day', 'msg', 'msg+', 'msg', 'events', 'msg', 'day', 'msg', 'msg']);
    assert.equal(rows[4].summary, '2 joined, 1 left');
    assert.equal(rows[4].items.length, 3);
    assert.equal(rows[6].label, 'Today');
    assert.equal(new Set(rows.map((r) => r.key)).size, rows.length, 'keys are unique');
  });
  it('leave joins out when asked', () => {
    const rows = buildRows(msgs, { hideJoins: true, now: day2 });
    assert.ok(!rows.some((r) => r.type === 'events' || (r.m && r.m.direction === 'system')));
  });
  it('put the unread marker before the first new incoming message', () => {
    const rows = buildRows(msgs, { markerSeq: msgs[1].seq, now: day2 });
    const i = rows.findIndex((r) => r.type === 'unread');
    assert.equal(rows[i + 1].m.text, 'three');
    assert.equal(rows[i + 1].cont, false);
  });
  it('do not group across a long pause', () => {
    const rows = buildRows([msg(day1, 'bob', 'a'), msg(day1 + 10 * 60e3, 'bob', 'b')], { now: day2 });
    assert.deepEqual(rows.filter((r) => r.type === 'msg').map((r) => r.cont), [false, false]);
  });
});
