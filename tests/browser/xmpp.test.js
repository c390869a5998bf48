// The web client with XMPP (a real prosody on loopback, STARTTLS with a
// self-signed certificate): prompts answered in dialogs (the certificate,
// an authorization request), buddy presence and typing indicators both ways.
// One Sapphire user holds two XMPP accounts, alice and bob, who talk.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Prosody, Scene, WAIT, appReady, screenshot, signIn as signInAs, until, watchPage,
} from './harness.js';

const USER = 'dana';
const PASSWORD = 'a long sapphire password';

const scene = new Scene();
const { problems } = scene;
let xmpp;
let sapphire;
let browser;
let page;
let page2;

async function signIn(p) {
  await p.goto(sapphire.url);
  await p.locator('#login-view').waitFor({ state: 'visible' });
  await signInAs(p, USER, PASSWORD);
  await appReady(p);
}

async function addXmppAccount(p, user, password) {
  await p.click('#btn-accounts');
  await p.click('#btn-add-account');
  await p.locator('#acc-protocol option[value="prpl-jabber"]').waitFor({ state: 'attached' });
  await p.selectOption('#acc-protocol', 'prpl-jabber');
  await p.fill('#acc-username', user);
  await p.fill('#acc-split-0', 'localhost');
  await p.fill('#acc-split-1', 'sapphire');
  await p.fill('#acc-password', password);
  await p.click('#acc-advanced summary');
  await p.fill('#opt-connect_server', 'localhost');
  await p.fill('#opt-port', String(xmpp.port));
  await p.click('#account-submit');
  await p.locator('#dlg-account').waitFor({ state: 'hidden' });
}

const accountRow = (p, jid) => p.locator('#account-list .account', { hasText: jid });

/** Opens a private conversation from `accountJid` to `to` with "New message". */
async function openIm(p, accountJid, to) {
  await p.click('#btn-im');
  const value = await p.$eval('#im-account', (sel, jid) =>
    [...sel.options].find((o) => o.textContent.startsWith(jid))?.value, accountJid);
  assert.ok(value, `account ${accountJid} in the list`);
  await p.selectOption('#im-account', value);
  await p.fill('#im-name', to);
  await p.press('#im-name', 'Enter');
  await until(p, (n) => document.querySelector('#conv-name').textContent === n
    && !document.querySelector('#conv-view').hidden, to);
}

describe('Sapphire with XMPP in a real Chromium', () => {
  before(async () => {
    await scene.start({ users: { [USER]: PASSWORD }, server: () => Prosody.start({ alice: 'alice-pw', bob: 'bob-pw' }) });
    ({ server: xmpp, sapphire, browser, page } = scene);
    page2 = watchPage(await browser.newPage(), problems);
  });

  after(() => scene.stop());

  it('asks about the self-signed certificate in a dialog, in every tab, and connects once accepted', async () => {
    await signIn(page);
    // Same browser: the second tab is signed in already.
    await page2.goto(sapphire.url);
    await page2.locator('#app-view').waitFor({ state: 'visible' });
    await page2.locator('#conn-banner').waitFor({ state: 'hidden', timeout: WAIT });
    await page.bringToFront(); // Chromium throttles the tab in the background
    await addXmppAccount(page, 'alice', 'alice-pw');
    const dlg = page.locator('#dlg-request');
    await dlg.waitFor({ state: 'visible', timeout: WAIT });
    await page2.locator('#dlg-request').waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await dlg.textContent(), /localhost/);
    await screenshot(page, 'x1-certificate-prompt', 'certificate-prompt');
    const accept = dlg.locator('#request-actions button', { hasText: /^Accept$/ });
    await accept.click();
    await dlg.waitFor({ state: 'hidden' });
    await page2.locator('#dlg-request').waitFor({ state: 'hidden', timeout: WAIT });
    await accountRow(page, 'alice@localhost/sapphire').locator('.pill.connected').waitFor({ timeout: WAIT });

    // The accepted certificate is remembered: bob connects without asking.
    await addXmppAccount(page, 'bob', 'bob-pw');
    await accountRow(page, 'bob@localhost/sapphire').locator('.pill.connected').waitFor({ timeout: WAIT });
    assert.ok(await page.isHidden('#dlg-request'));
  });

  it('shows a wrong password as an account error', async () => {
    await addXmppAccount(page, 'mallory', 'not-registered');
    const row = accountRow(page, 'mallory@localhost/sapphire');
    await row.locator('.pill.error').waitFor({ timeout: WAIT });
    assert.notEqual((await row.locator('.account-msg').textContent()).trim(), '');
    await screenshot(page, 'x2-account-error', 'account-error');
    await row.locator('button', { hasText: 'Remove' }).click();
    await page.click('#confirm-yes');
    await row.waitFor({ state: 'detached' });
    // Its error message goes away with it.
    await page.locator('#toasts .toast.error').waitFor({ state: 'detached' });
  });

  it('adds a buddy: the other side authorizes in a dialog, presence shows online', async () => {
    await page.click('#btn-add-buddy');
    const value = await page.$eval('#buddy-account', (sel) =>
      [...sel.options].find((o) => o.textContent.startsWith('alice@'))?.value);
    await page.selectOption('#buddy-account', value);
    await page.fill('#buddy-name', 'bob@localhost');
    await page.press('#buddy-name', 'Enter');
    const dlg = page.locator('#dlg-request');
    await dlg.waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await dlg.textContent(), /alice@localhost/);
    await screenshot(page, 'x3-authorization-prompt', 'authorization-prompt');
    await dlg.locator('#request-actions button', { hasText: 'Authorize' }).click();
    await dlg.waitFor({ state: 'hidden' });
    const bob = page.locator('#buddy-list li', { hasText: 'bob@localhost' });
    await bob.locator('.dot.online').waitFor({ timeout: WAIT });
    await page2.locator('#buddy-list li', { hasText: 'bob@localhost' }).locator('.dot.online').waitFor({ timeout: WAIT });
  });

  it('shows typing both ways and delivers the message', async () => {
    // Tab 1 is alice talking to bob; tab 2 is bob talking to alice.
    await openIm(page, 'alice@', 'bob@localhost');
    await page2.bringToFront();
    await openIm(page2, 'bob@', 'alice@localhost');
    await page.bringToFront();
    await page.locator('#compose').pressSequentially('hello b');
    await until(page2, () => /is typing/.test(document.querySelector('#typing').textContent));
    assert.equal(await page2.textContent('#typing'), 'alice@localhost is typing…');
    await page.locator('#compose').pressSequentially('ob');
    await page.press('#compose', 'Enter');
    await until(page2, () => [...document.querySelectorAll('#messages .msg.in .text')].some((e) => e.textContent === 'hello bob'));
    await until(page2, () => document.querySelector('#typing').textContent === '');

    await page2.bringToFront();
    await page2.locator('#compose').pressSequentially('hi alice');
    await until(page, () => /is typing/.test(document.querySelector('#typing').textContent));
    assert.equal(await page.textContent('#typing'), 'bob@localhost is typing…');
    await page.bringToFront();
    await screenshot(page, 'x4-typing', 'typing');
    await page2.press('#compose', 'Enter');
    await until(page, () => [...document.querySelectorAll('#messages .msg.in .text')].some((e) => e.textContent === 'hi alice'));
  });

  it('creates a group chat through the room configuration form, then sets its topic', async () => {
    await page.bringToFront();
    const room = 'configured@conference.localhost';
    await page.click('#btn-join');
    const value = await page.$eval('#join-account', (sel) =>
      [...sel.options].find((o) => o.textContent.startsWith('alice@'))?.value);
    await page.selectOption('#join-account', value);
    await page.fill('#join-name', room);
    await page.press('#join-name', 'Enter');
    // A new room: libpurple asks how to set it up...
    const dlg = page.locator('#dlg-request');
    await dlg.locator('#request-actions button', { hasText: 'Configure Room' }).click({ timeout: WAIT });
    // ...and then shows the server's form, a "fields" prompt.
    const name = dlg.locator('[data-field="muc#roomconfig_roomname"]');
    await name.waitFor({ timeout: WAIT });
    await name.fill('Configured Room');
    await screenshot(page, 'x5-room-form', 'form-prompt');
    await dlg.locator('#request-actions button.primary').click();
    await dlg.waitFor({ state: 'hidden', timeout: WAIT });
    await until(page, (r) => document.querySelector('#conv-name').textContent === r
      && !document.querySelector('#conv-view').hidden, room);

    await page.click('#btn-topic');
    await page.fill('#topic-input', 'Plans for the weekend');
    await page.press('#topic-input', 'Enter');
    await page.locator('#dlg-topic').waitFor({ state: 'hidden' });
    await until(page, () => document.querySelector('#conv-topic').textContent === 'Plans for the weekend');
    await page.click('#btn-members');
    await page.locator('#member-list li', { hasText: 'alice' }).waitFor();
    await page.click('#members-close');
  });

  it('disables and enables an account; its buddies see it go and come back', async () => {
    await page.bringToFront();
    if (await page.isVisible('#dlg-request')) {
      assert.fail(`unexpected prompt: ${(await page.textContent('#dlg-request')).replace(/\s+/g, ' ')}`);
    }
    await page.click('#btn-accounts');
    const bobRow = accountRow(page, 'bob@localhost/sapphire');
    await bobRow.locator('button', { hasText: 'Disable' }).click();
    await bobRow.locator('.pill.disabled').waitFor({ timeout: WAIT });
    const buddy = page.locator('#buddy-list li', { hasText: 'bob@localhost' });
    await buddy.locator('.dot.offline').waitFor({ timeout: WAIT });
    await bobRow.locator('button', { hasText: 'Enable' }).click();
    await bobRow.locator('.pill.connected').waitFor({ timeout: WAIT });
    await buddy.locator('.dot.online').waitFor({ timeout: WAIT });

    // Edit: a local alias for the account.
    await bobRow.locator('button', { hasText: 'Edit' }).click();
    assert.equal(await page.inputValue('#acc-username'), 'bob');
    assert.ok(await page.isDisabled('#acc-username'), 'the user name cannot change');
    await page.fill('#acc-alias', 'Bobby at home');
    await page.click('#account-submit');
    await page.locator('#dlg-account').waitFor({ state: 'hidden' });
    await page.locator('#account-list .account strong', { hasText: 'Bobby at home' }).waitFor();
    await page2.bringToFront();
    await page2.click('#btn-accounts');
    await page2.locator('#account-list .account strong', { hasText: 'Bobby at home' }).waitFor();
  });

  it('had no page errors and no CSP violations', () => {
    assert.deepEqual(problems, []);
  });
});
