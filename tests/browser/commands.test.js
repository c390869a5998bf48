// What you type does what you meant (issue #12), in Debian's Chromium
// against the real proxy, backend and ngircd: /me, /query, an unknown
// command, Tab completion of commands, a long paste that asks first and
// shows its lines queued then sent, and refused joins in the Join dialog.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Scene, WAIT, convItem, screenshot, until, waitText } from './harness.js';

const USER = 'alice';
const PASSWORD = 'correct horse battery staple';
const CHANNEL = '#cmds';

const scene = new Scene();
const { problems } = scene;
let sapphire;
let page;
let bob;

const openChannel = async (p) => {
  await convItem(p, CHANNEL).locator('button').click();
  await until(p, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
};

/** Types `text` in the composer and presses Enter. */
async function type(p, text) {
  await p.fill('#compose', text);
  await p.press('#compose', 'Enter');
}

describe('Commands, actions and paced sending in the web client', () => {
  before(async () => {
    await scene.start({ users: { [USER]: PASSWORD }, peers: ['bob'], channel: CHANNEL });
    ({ sapphire, page, peers: [bob] } = scene);
    // Channels alice cannot join: invitation only, and with a key.
    bob.send('JOIN #club');
    await bob.expect(/ 366 .*#club/);
    bob.send('MODE #club +i');
    bob.send('JOIN #locked');
    await bob.expect(/ 366 .*#locked/);
    bob.send('MODE #locked +k sesame');
    await bob.expect(/MODE #locked/);
  });

  after(async () => {
    await scene.stop();
    assert.deepEqual(problems, []);
  });

  it('signs in and joins a channel', async () => {
    await page.goto(sapphire.url);
    await scene.signInAndJoin(USER, PASSWORD);
  });

  it('shows /me as an action, on both sides', async () => {
    await type(page, '/me waves');
    const wire = await bob.expect(/PRIVMSG #cmds :/);
    assert.match(wire, /:\x01ACTION waves\x01$/);
    await waitText(page, 'waves');
    const row = page.locator('#messages .msg.action', { hasText: 'waves' });
    assert.equal(await row.locator('.sender').textContent(), '* alice');
    assert.equal(await page.inputValue('#compose'), '');
    bob.send(`PRIVMSG ${CHANNEL} :\x01ACTION dances\x01`);
    await waitText(page, 'dances');
    const theirs = page.locator('#messages .msg.action', { hasText: 'dances' });
    assert.equal(await theirs.locator('.sender').textContent(), '* bob');
  });

  it('completes a command with Tab', async () => {
    await page.fill('#compose', '/jo');
    await page.press('#compose', 'Tab');
    await until(page, () => document.querySelector('#compose').value === '/join ');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'compose', 'Tab stays in the composer');
    await page.fill('#compose', '/to');
    await page.press('#compose', 'Tab');
    await until(page, () => document.querySelector('#compose').value === '/topic ');
  });

  it('refuses an unknown command, keeps the text and sends nothing', async () => {
    await type(page, '/nosuch thing');
    await until(page, () => /unknown command '\/nosuch'/.test(document.querySelector('#compose-error').textContent));
    assert.match(await page.textContent('#compose-error'), /\/\//, 'says how to send it as text');
    assert.equal(await page.inputValue('#compose'), '/nosuch thing');
    // Nothing reached the channel: the next line bob sees is this one.
    await type(page, 'after nosuch');
    assert.match(await bob.expect(/PRIVMSG #cmds :/), /:after nosuch$/);
    await until(page, () => document.querySelector('#compose-error').textContent === '');
  });

  it('opens and switches to the conversation /query names', async () => {
    await type(page, '/query bob');
    await until(page, () => document.querySelector('#conv-name').textContent === 'bob'
      && !document.querySelector('#conv-view').hidden);
    assert.equal(await page.inputValue('#compose'), '');
    await type(page, 'hello in private');
    assert.match(await bob.expect(/PRIVMSG bob :/), /:hello in private$/);
    await openChannel(page);
  });

  it('asks before a long paste, says how long it takes, and shows its lines queued then sent', async () => {
    const lines = Array.from({ length: 14 }, (_, i) => `pasted line ${i + 1}`);
    const paste = lines.join('\n');
    await page.fill('#compose', paste);
    await page.press('#compose', 'Enter');
    await page.locator('#dlg-confirm').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#confirm-title'), 'Send 14 lines?');
    const question = await page.textContent('#confirm-text');
    assert.match(question, /14 lines to #cmds/);
    assert.match(question, /10 lines at once, then one every 2 s/);
    assert.match(question, /arrives in about 8 seconds/);
    await screenshot(page, 'paste-confirm');
    // Cancel keeps the text.
    await page.click('#dlg-confirm button[value="no"]');
    await page.locator('#dlg-confirm').waitFor({ state: 'hidden' });
    assert.equal(await page.inputValue('#compose'), paste);
    // Send: what the pace holds back is shown as queued, then sent.
    await page.press('#compose', 'Enter');
    await page.locator('#dlg-confirm').waitFor({ state: 'visible' });
    await page.click('#confirm-yes');
    await until(page, () => [...document.querySelectorAll('#messages .msg.out .sending')]
      .some((s) => s.textContent.trim() === 'queued'));
    await screenshot(page, 'paste-queued');
    for (const l of lines) assert.match(await bob.expect(/PRIVMSG #cmds :/), new RegExp(`:${l}$`));
    await until(page, () => {
      const marks = [...document.querySelectorAll('#messages .msg.out .sending')].map((s) => s.textContent.trim());
      return marks.length > 0 && marks.every((t) => t === 'sent');
    }, null, WAIT);
    const shown = await page.$$eval('#messages .msg.out .text', (els) => els.map((e) => e.textContent));
    assert.deepEqual(shown.slice(-14), lines, 'in order, once each');
    assert.equal(await page.inputValue('#compose'), '');
  });

  it('shows why the server refused a join in the Join dialog', async () => {
    for (const [name, mode] of [['#club', '+i'], ['locked', '+k']]) {
      await page.click('#btn-join');
      await page.fill('#join-name', name);
      await page.press('#join-name', 'Enter');
      await until(page, () => document.querySelector('#join-error').textContent !== '');
      const text = await page.textContent('#join-error');
      assert.ok(text.includes(mode) && text.includes('Could not join #'), text);
      assert.ok(await page.isVisible('#dlg-join'), 'the dialog stays open');
      assert.equal(await page.inputValue('#join-name'), name, 'with what was typed');
      await screenshot(page, `join-refused-${mode === '+i' ? 'invite' : 'key'}`);
      await page.click('#dlg-join button[data-close]');
      await page.locator('#dlg-join').waitFor({ state: 'hidden' });
    }
    // No error toast repeats it.
    assert.equal(await page.locator('#toasts .toast.error').count(), 0);
    // With the key, the same dialog joins and opens the chat.
    await page.click('#btn-join');
    await page.fill('#join-name', '#locked');
    await page.fill('#join-password', 'sesame');
    await page.press('#join-name', 'Enter');
    await until(page, () => document.querySelector('#conv-name').textContent === '#locked'
      && !document.querySelector('#dlg-join').open);
  });
});
