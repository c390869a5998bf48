// Unit tests of web/commands.js (pure: no DOM).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  completeCommand, deliveryMs, describeDuration, ircTextLimit, isCommand, joinTarget, pasteCheck, splitLines,
} from '../../web/commands.js';

const irc = { id: 1, protocol: 'prpl-irc', pacing: { burst: 10, interval_ms: 2000 } };
const xmpp = { id: 2, protocol: 'prpl-jabber' };

describe('paste check', () => {
  it('counts the lines the backend sends, cut at words', () => {
    const limit = ircTextLimit('#sapphire');
    assert.equal(limit, 512 - (2 + 8 + 9 + 2 + 100));
    assert.deepEqual(splitLines('a\r\n\nb\n', 10), ['a', 'b']);
    const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
    const lines = splitLines(words, 50);
    assert.ok(lines.every((l) => new TextEncoder().encode(l).length <= 50 && !l.startsWith(' ') && !l.endsWith(' ')));
    assert.equal(lines.join(' '), words);
    // A word longer than a line is cut at a character boundary.
    assert.deepEqual(splitLines('é'.repeat(10), 5), ['éé', 'éé', 'éé', 'éé', 'éé']);
  });

  it('asks before more than 3 lines to IRC and says how long they take', () => {
    assert.equal(pasteCheck('one\ntwo\nthree', irc, '#c'), null);
    assert.equal(pasteCheck('1\n2\n3\n4', xmpp, 'room@muc'), null, 'only paced accounts');
    assert.equal(pasteCheck('/quote a\nb\nc\nd', irc, '#c'), null, 'a command is not a paste');
    const four = pasteCheck('1\n2\n3\n4', irc, '#c');
    assert.equal(four.lines, 4);
    assert.equal(four.ms, 0);
    const paste = Array.from({ length: 25 }, (_, i) => `line ${i}`).join('\n');
    const r = pasteCheck(paste, irc, '#c');
    assert.equal(r.lines, 25);
    assert.equal(r.ms, 15 * 2000);
    assert.match(r.question, /25 lines to #c/);
    assert.match(r.question, /about 30 seconds/);
    assert.match(r.question, /10 lines at once, then one every 2 s/);
  });

  it('computes delivery at the pace and words it', () => {
    assert.equal(deliveryMs(10, irc.pacing), 0);
    assert.equal(deliveryMs(300, irc.pacing), 290 * 2000);
    assert.equal(deliveryMs(300, undefined), 0);
    assert.equal(describeDuration(0), 'under a second');
    assert.equal(describeDuration(1000), 'about 1 second');
    assert.equal(describeDuration(580000), 'about 10 minutes');
    assert.equal(describeDuration(2 * 3600 * 1000), 'about 2 hours');
  });
});

describe('commands', () => {
  const list = [{ name: 'me' }, { name: 'msg' }, { name: 'join' }, { name: 'mode' }];

  it('completes a command name in the first word, cycling', () => {
    const a = completeCommand('/jo', 3, list);
    assert.equal(a.text, '/join ');
    const m = completeCommand('/m', 2, list);
    assert.equal(m.text, '/me ');
    const m2 = completeCommand(m.text, m.caret, list, m.state);
    assert.equal(m2.text, '/msg ');
    assert.equal(completeCommand('/me wa', 6, list), null, 'not after the first word');
    assert.equal(completeCommand('//jo', 4, list), null, '// is text');
    assert.equal(completeCommand('jo', 2, list), null);
    assert.equal(completeCommand('/zz', 3, list), null);
  });

  it('tells commands from text and finds the /join target', () => {
    assert.ok(isCommand('/me waves'));
    assert.ok(!isCommand('//etc'));
    assert.ok(!isCommand('/ x'));
    assert.ok(!isCommand('hi'));
    assert.equal(joinTarget('/join sapphire', 'prpl-irc'), '#sapphire');
    assert.equal(joinTarget('/JOIN #x key', 'prpl-irc'), '#x');
    assert.equal(joinTarget('/join room@muc', 'prpl-jabber'), 'room@muc');
    assert.equal(joinTarget('/part', 'prpl-irc'), null);
  });
});
