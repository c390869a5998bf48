// The web client's reading and driving features, from what the user sees:
// nick colours, grouping, condensed joins, formatting and links, drafts,
// Tab completion, input history, closing conversations, next unread, the
// settings page, the phone layout, the prompt after signing in again, and
// axe-core's accessibility check. Real proxy, backend and ngircd; the other
// people are plain IRC clients.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  IrcPeer, Sapphire, Scene, WAIT, addIrcAccount, appReady, convItem, joinChat, launchBrowser, screenshot, signIn,
  until, waitText, watchPage,
} from './harness.js';
import { nickColour } from '../../web/format.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const AXE = fs.readFileSync(path.join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

const USER = 'erin';
const PASSWORD = 'erin has a long password';
const CHANNEL = '#lounge';

const scene = new Scene();
const { problems } = scene;
let irc;
let sapphire;
let browser;
let page;
let bob;
let carol;

/** axe-core's serious and critical findings on the page as it is. */
async function axeViolations(p) {
  if (!(await p.evaluate(() => typeof window.axe === 'object'))) await p.evaluate(AXE);
  return p.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(', ')})`);
  });
}

const senderClass = (p, text) => p.locator('#messages .msg', { hasText: text }).locator('.sender').getAttribute('class');
const colourOf = (p, text) => p.locator('#messages .msg', { hasText: text }).locator('.sender')
  .evaluate((el) => getComputedStyle(el).color);
const openChannel = async (p) => {
  await convItem(p, CHANNEL).locator('button').click();
  await until(p, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
};

describe('Reading and driving the web client', () => {
  before(async () => {
    // Nicks with different colours (checked, not assumed).
    assert.notEqual(nickColour('bob'), nickColour('carol'));
    await scene.start({ users: { [USER]: PASSWORD }, peers: ['bob', 'carol'], channel: CHANNEL });
    ({ server: irc, sapphire, browser, page, peers: [bob, carol] } = scene);
  });

  after(() => scene.stop());

  it('has no serious accessibility violations on the sign-in page', async () => {
    await page.goto(sapphire.url);
    await page.locator('#login-view').waitFor({ state: 'visible' });
    assert.deepEqual(await axeViolations(page), []);
  });

  it('joins a channel from a Join dialog that focuses the chat name', async () => {
    await signIn(page, USER, PASSWORD);
    await appReady(page);
    await addIrcAccount(page, USER, irc.port);
    await page.click('#btn-join');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'join-name');
    await page.keyboard.press('Escape');
    await joinChat(page, CHANNEL);
    await bob.expect(new RegExp(`JOIN :?${CHANNEL}`));
  });

  it('colours nicks (stable across reloads) and groups consecutive messages', async () => {
    bob.send(`PRIVMSG ${CHANNEL} :first from bob`);
    await waitText(page, 'first from bob');
    bob.send(`PRIVMSG ${CHANNEL} :second from bob`);
    await waitText(page, 'second from bob');
    carol.send(`PRIVMSG ${CHANNEL} :hello from carol`);
    await waitText(page, 'hello from carol');
    const bobClass = await senderClass(page, 'first from bob');
    const carolClass = await senderClass(page, 'hello from carol');
    assert.match(bobClass, new RegExp(`nick-${nickColour('bob')}\\b`));
    assert.match(carolClass, new RegExp(`nick-${nickColour('carol')}\\b`));
    const bobColour = await colourOf(page, 'first from bob');
    assert.notEqual(bobColour, await colourOf(page, 'hello from carol'), 'two nicks, two colours');
    // Grouped: bob's second line continues his first; carol starts her own.
    const cls = await page.$$eval('#messages .msg:not(.system)', (els) => els.map((e) => [e.querySelector('.text').textContent, e.classList.contains('cont')]));
    assert.deepEqual(cls.filter(([t]) => /from (bob|carol)/.test(t)), [
      ['first from bob', false], ['second from bob', true], ['hello from carol', false]]);
    // A day separator heads the day's messages.
    assert.equal(await page.locator('#messages li.day').first().textContent(), 'Today');
    await page.reload();
    await appReady(page);
    await openChannel(page);
    await waitText(page, 'hello from carol');
    assert.equal(await colourOf(page, 'first from bob'), bobColour, 'same colour after a reload');
    assert.equal(await senderClass(page, 'first from bob'), bobClass);
  });

  it('a reload revalidates the cached client: no file is sent again', async () => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const paths = new Map();
    const seen = [];
    cdp.on('Network.responseReceived', (e) => {
      const u = new URL(e.response.url);
      if (u.protocol === 'https:' && !u.pathname.startsWith('/api/') && u.pathname !== '/ws') paths.set(e.requestId, u.pathname);
    });
    // Bytes on the wire (headers included); the status CDP reports for a
    // revalidated response is not reliable (200 or 304), the size is.
    cdp.on('Network.loadingFinished', (e) => {
      if (paths.has(e.requestId)) seen.push({ path: paths.get(e.requestId), bytes: e.encodedDataLength });
    });
    await page.reload();
    await appReady(page);
    await openChannel(page);
    await cdp.detach();
    const got = seen.map((r) => r.path);
    for (const p of ['/', '/app.js', '/store.js', '/app.css']) assert.ok(got.includes(p), `${p} in ${got}`);
    // A 304 is about 650 bytes of headers; the smallest module sent again
    // with brotli would be more.
    assert.deepEqual(seen.filter((r) => r.bytes > 1000), [], 'only 304s, no file sent again');
  });

  it('condenses joins and parts into one line, expandable, hidden by a setting', async () => {
    const peers = await Promise.all([0, 1, 2].map((i) => IrcPeer.connect(irc.port, `dave${i}`)));
    for (const p of peers) {
      p.send(`JOIN ${CHANNEL}`);
      await p.expect(/ 366 /);
    }
    peers[0].send(`PART ${CHANNEL}`);
    await peers[0].expect(/PART/);
    const row = page.locator('#messages li.events').last();
    await until(page, () => {
      const rows = document.querySelectorAll('#messages li.events');
      return rows.length && rows[rows.length - 1].textContent.includes('3 joined, 1 left');
    });
    assert.equal(await row.locator('.msg').count(), 0, 'condensed');
    await row.locator('button').click();
    await until(page, () => document.querySelectorAll('#messages li.events:last-of-type .event-lines .msg').length === 4);
    assert.match(await row.locator('.event-lines').textContent(), /dave1.*entered the room/);
    await screenshot(page, 'c1-channel', 'channel');

    await page.click('#btn-settings');
    await page.check('#set-hide-joins');
    await openChannel(page);
    await until(page, () => document.querySelectorAll('#messages li.events').length === 0
      && ![...document.querySelectorAll('#messages .msg.system .text')].some((e) => /entered the room/.test(e.textContent)));
    await page.click('#btn-settings');
    await page.uncheck('#set-hide-joins');
    await openChannel(page);
    await page.locator('#messages li.events').first().waitFor();
    for (const p of peers) p.close();
  });

  it('shows IRC formatting with classes, and links www., irc:// and parentheses (topic too)', async () => {
    bob.send(`PRIVMSG ${CHANNEL} :\x1dslanted\x1d see www.debian.org and (https://en.wikipedia.org/wiki/Foo_(bar)) or irc://irc.test/#x.`);
    const text = 'slanted see www.debian.org and (https://en.wikipedia.org/wiki/Foo_(bar)) or irc://irc.test/#x.';
    await waitText(page, text);
    const line = page.locator('#messages .msg', { hasText: 'slanted see' });
    assert.equal(await line.locator('.text .irc-i').textContent(), 'slanted');
    const links = await line.locator('.text a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(links, ['https://www.debian.org/', 'https://en.wikipedia.org/wiki/Foo_(bar)', 'irc://irc.test/#x']);
    bob.send(`TOPIC ${CHANNEL} :Read https://example.org/rules first`);
    await until(page, () => document.querySelector('#conv-topic a')?.getAttribute('href') === 'https://example.org/rules');
    assert.equal(await page.textContent('#conv-topic'), 'Read https://example.org/rules first');
  });

  it('completes nicks with Tab and recalls sent messages with Up', async () => {
    await page.click('#compose');
    await page.keyboard.type('ca');
    await page.keyboard.press('Tab');
    assert.equal(await page.inputValue('#compose'), 'carol: ');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'compose', 'Tab stayed in the composer');
    await page.keyboard.type('hi there');
    await page.keyboard.press('Enter');
    await carol.expect(/PRIVMSG #lounge :carol: hi there/);
    await until(page, () => document.querySelector('#compose').value === '');
    await page.keyboard.press('ArrowUp');
    assert.equal(await page.inputValue('#compose'), 'carol: hi there');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.inputValue('#compose'), '');
  });

  it('keeps a draft per conversation; members are filterable and open a private conversation', async () => {
    await page.fill('#compose', 'half-written thought');
    await page.click('#btn-members');
    await page.fill('#member-filter', 'BO');
    await until(page, () => [...document.querySelectorAll('#member-list li .member-btn > span:last-child')].map((l) => l.textContent).join() === 'bob');
    await page.click('#member-list li button');
    await until(page, () => document.querySelector('#conv-name').textContent === 'bob');
    assert.equal(await page.inputValue('#compose'), '', 'a new conversation starts empty');
    await page.fill('#compose', 'draft for bob');
    await openChannel(page);
    assert.equal(await page.inputValue('#compose'), 'half-written thought', 'the draft survived switching');
    await convItem(page, 'bob').locator('button').click();
    assert.equal(await page.inputValue('#compose'), 'draft for bob');
    await page.fill('#compose', '');
    // A reload of the tab keeps the drafts too.
    await openChannel(page);
    await page.reload();
    await appReady(page);
    await until(page, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
    assert.equal(await page.inputValue('#compose'), 'half-written thought', 'the draft survived a reload');
    await page.fill('#compose', '');
    // (Back to bob: a conversation without messages is not kept by the server.)
    await page.click('#btn-members');
    await page.fill('#member-filter', 'bob');
    await page.click('#member-list li button');
    await until(page, () => document.querySelector('#conv-name').textContent === 'bob');
  });

  it('closes a conversation; it stays closed after a reload and comes back with a message', async () => {
    await page.click('#btn-close');
    await convItem(page, 'bob').waitFor({ state: 'detached' });
    await page.reload();
    await appReady(page);
    await convItem(page, CHANNEL).waitFor();
    assert.equal(await convItem(page, 'bob').count(), 0, 'still closed after a reload');
    bob.send(`PRIVMSG ${USER} :are you still there?`);
    await until(page, () => document.querySelector('#conv-list li[data-name="bob"] .badge.unread')?.textContent === '1');
  });

  it('jumps to the next unread conversation and marks where the new messages start', async () => {
    await convItem(page, 'bob').locator('button').click();
    await waitText(page, 'are you still there?');
    carol.send(`PRIVMSG ${CHANNEL} :new one`);
    carol.send(`PRIVMSG ${CHANNEL} :new two`);
    await until(page, (n) => document.querySelector(`#conv-list li[data-name="${n}"] .badge.unread`)?.textContent === '2', CHANNEL);
    // Only new messages are announced to screen readers, not the list.
    assert.equal(await page.getAttribute('#messages', 'aria-live'), null);
    await page.keyboard.press('Alt+Shift+ArrowDown');
    await until(page, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
    await waitText(page, 'new two');
    const after = await page.$eval('#messages .unread-line', (el) => el.nextElementSibling.querySelector('.text').textContent);
    assert.equal(after, 'new one');
    carol.send(`PRIVMSG ${CHANNEL} :announced`);
    await until(page, () => document.querySelector('#announce').textContent === 'carol in #lounge: announced');
  });

  it('has settings for the clock and the theme, kept across reloads', async () => {
    await page.click('#btn-settings');
    await page.selectOption('#set-clock', '24');
    await page.selectOption('#set-theme', 'dark');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(19, 24, 32)');
    assert.deepEqual(await axeViolations(page), [], 'settings page');
    await screenshot(page, 'c2-settings', 'settings');
    await page.reload();
    await appReady(page);
    await openChannel(page);
    await waitText(page, 'announced');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    const times = await page.$$eval('#messages .msg time', (ts) => ts.map((t) => t.textContent));
    assert.ok(times.every((t) => /^\d{2}:\d{2}$/.test(t)), `24-hour times: ${times}`);
    assert.deepEqual(await axeViolations(page), [], 'conversation, dark');
    await screenshot(page, 'c3-channel-dark', 'channel-dark');
    await page.click('#btn-settings');
    await page.selectOption('#set-theme', 'light');
    await page.selectOption('#set-clock', 'auto');
    await openChannel(page);
    assert.deepEqual(await axeViolations(page), [], 'conversation, light');
    await page.click('#btn-accounts');
    assert.deepEqual(await axeViolations(page), [], 'accounts page');
  });

  it('on a phone, keeps the newest message in view when the keyboard shrinks the screen', async () => {
    const phone = await launchBrowser({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    try {
      const p = watchPage(await phone.newPage(), problems);
      await p.goto(sapphire.url);
      await p.locator('#login-view').waitFor({ state: 'visible' });
      await signIn(p, USER, PASSWORD);
      await appReady(p);
      await convItem(p, CHANNEL).locator('button').tap();
      carol.send(`PRIVMSG ${CHANNEL} :the newest line`);
      await waitText(p, 'the newest line');
      const lastVisible = () => p.evaluate(() => {
        const s = document.querySelector('#scroller').getBoundingClientRect();
        const items = document.querySelectorAll('#messages > li');
        const m = items[items.length - 1].getBoundingClientRect();
        const c = document.querySelector('#composer').getBoundingClientRect();
        return m.bottom <= s.bottom + 1 && m.top >= s.top && c.bottom <= window.innerHeight + 1;
      });
      await until(p, () => {
        const s = document.querySelector('#scroller');
        return s.scrollHeight - s.scrollTop - s.clientHeight < 2;
      });
      assert.ok(await lastVisible());
      // One line per message: time, name and text share the line.
      const h = await p.locator('#messages .msg', { hasText: 'the newest line' }).evaluate((el) => el.getBoundingClientRect().height);
      assert.ok(h < 40, `one line: ${h}px`);
      // The on-screen keyboard: a much shorter viewport.
      await p.setViewportSize({ width: 390, height: 420 });
      await until(p, () => document.querySelector('#composer').getBoundingClientRect().bottom <= window.innerHeight + 1);
      await until(p, () => {
        const s = document.querySelector('#scroller').getBoundingClientRect();
        const items = document.querySelectorAll('#messages > li');
        const m = items[items.length - 1].getBoundingClientRect();
        return m.bottom <= s.bottom + 1 && m.top >= s.top;
      });
      assert.ok(await lastVisible(), 'the newest message is still visible');
      await p.setViewportSize({ width: 390, height: 844 });
      // Touch targets.
      const small = await p.$$eval('#conv-view button, #composer textarea', (els) => els
        .filter((e) => e.offsetParent !== null)
        .map((e) => [e.textContent.trim() || e.id, Math.round(e.getBoundingClientRect().height)])
        .filter(([, hh]) => hh < 44));
      assert.deepEqual(small, [], 'every control is at least 44 px high');
      // Back says what is waiting elsewhere.
      bob.send(`PRIVMSG ${USER} :ping from bob`);
      await until(p, () => document.querySelector('#conv-view [data-back] .badge')?.textContent === '1');
      await screenshot(p, 'c4-phone-conversation', 'phone-conversation');
      assert.deepEqual(await axeViolations(p), [], 'phone conversation');
    } finally {
      await phone.close();
    }
  });

  it('shows a prompt again after signing out with it open and signing in again', async () => {
    const page2 = watchPage(await browser.newPage(), problems);
    await page2.goto(sapphire.url);
    await appReady(page2);
    await page.bringToFront();
    bob.send(`PRIVMSG ${USER} :\x01DCC SEND notes.txt 2130706433 9 1234\x01`);
    await page.locator('#dlg-request').waitFor({ state: 'visible', timeout: WAIT });
    // Signed out in the other tab (which dismisses its copy first) while
    // this one shows the prompt.
    await page2.bringToFront();
    await page2.locator('#dlg-request').waitFor({ state: 'visible', timeout: WAIT });
    await page2.keyboard.press('Escape');
    await page2.locator('#dlg-request').waitFor({ state: 'hidden' });
    await page2.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.ok(await page.isHidden('#dlg-request'));
    await page.bringToFront();
    await signIn(page, USER, PASSWORD);
    await appReady(page);
    await page.locator('#dlg-request').waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await page.textContent('#dlg-request'), /notes\.txt/);
    await page.locator('#request-actions button').last().click();
    await page.locator('#dlg-request').waitFor({ state: 'hidden' });
    await page2.close();
  });

  it('lists the conversations a hello left out behind "More conversations"', async () => {
    // A backend whose snapshot holds the 2 newest conversations (500 by default).
    const small = await Sapphire.start({ dana: PASSWORD }, { backendToml: 'hello_conversations = 2\n' });
    const p2 = watchPage(await browser.newPage(), problems);
    let peer;
    try {
      await p2.goto(small.url);
      await signIn(p2, 'dana', PASSWORD);
      await appReady(p2);
      await addIrcAccount(p2, 'dana', irc.port);
      // Four strangers (one IRC client changing its nick) write to dana.
      peer = await IrcPeer.connect(irc.port, 'q0');
      for (let i = 0; i < 4; i++) {
        if (i) peer.send(`NICK q${i}`);
        peer.send(`PRIVMSG dana :hello ${i}`);
      }
      await convItem(p2, 'q3').waitFor();
      await p2.reload();
      await appReady(p2);
      await convItem(p2, 'q3').waitFor();
      await convItem(p2, 'q2').waitFor();
      assert.equal(await convItem(p2, 'q0').count(), 0, 'the oldest is not in the snapshot');
      await p2.click('#more-convs');
      await convItem(p2, 'q0').waitFor();
      await convItem(p2, 'q1').waitFor();
      await p2.locator('#more-convs').waitFor({ state: 'detached' });
      assert.equal(await p2.locator('#conv-list li.conv-item[data-name="q1"] .badge.unread').textContent(), '1');
    } finally {
      if (peer) peer.close();
      await p2.close();
      await small.stop();
    }
  });

  it('had no page errors and no CSP violations', () => {
    assert.deepEqual(problems, []);
  });
});
