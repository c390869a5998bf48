// Notifications in a real Chromium: the service worker registers at the
// root scope and shows a Web Push message delivered to it (DevTools
// protocol), a mention while the tab is in the background calls the
// Notification API (spied) and its click opens the message, mentions have
// their own badge, highlighted line and list, and a level set in one tab
// is seen in another. Real proxy, backend and ngircd.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Scene, WAIT, appReady, convItem, screenshot, until, waitText, watchPage } from './harness.js';

const USER = 'nora';
const PASSWORD = 'nora has a long password';
const CHANNEL = '#alerts';

const scene = new Scene();
const { problems } = scene;
let sapphire;
let browser;
let page;
let bob;

// The Notification API as a spy (what the page asked to show), and a
// switch for whether the tab is in the background.
function spyScript() {
  window.__shown = [];
  window.__background = false;
  class SpyNotification {
    static permission = 'default';
    static requestPermission() {
      SpyNotification.permission = 'granted';
      return Promise.resolve('granted');
    }
    constructor(title, options = {}) {
      this.title = title;
      this.body = options.body;
      this.tag = options.tag;
      window.__shown.push(this);
    }
    close() {}
  }
  window.Notification = SpyNotification;
  Object.defineProperty(document, 'visibilityState', { get: () => (window.__background ? 'hidden' : 'visible') });
  document.hasFocus = () => !window.__background;
}

describe('Notifications in a real Chromium', () => {
  before(async () => {
    await scene.start({ users: { [USER]: PASSWORD }, peers: ['bob'], channel: CHANNEL });
    ({ sapphire, browser, page, peers: [bob] } = scene);
  });

  after(() => scene.stop());

  it('registers the service worker at the root scope without asking for permission', async () => {
    await page.goto(sapphire.url);
    const reg = await page.evaluate(async (ms) => {
      const r = await Promise.race([navigator.serviceWorker.ready,
        new Promise((_, reject) => setTimeout(() => reject(new Error('no service worker')), ms))]);
      return { scope: r.scope, script: r.active.scriptURL, permission: Notification.permission };
    }, WAIT);
    assert.equal(reg.scope, sapphire.url);
    assert.equal(reg.script, `${sapphire.url}sw.js`);
    assert.equal(reg.permission, 'default', 'nothing asked on page load');
  });

  it('shows a Web Push message delivered to the service worker as a notification', async () => {
    await page.context().grantPermissions(['notifications'], { origin: sapphire.url.replace(/\/$/, '') });
    const cdp = await page.context().newCDPSession(page);
    // The registration of ours whose worker is activated (and running).
    const scopes = new Map();
    const activated = new Promise((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        for (const r of registrations) if (!r.isDeleted) scopes.set(r.registrationId, r.scopeURL);
      });
      cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => {
        const v = versions.find((x) => x.status === 'activated' && x.runningStatus === 'running'
          && scopes.get(x.registrationId) === sapphire.url);
        if (v) resolve(v.registrationId);
      });
    });
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.startWorker', { scopeURL: sapphire.url });
    const registrationId = await activated;
    const payload = { title: 'bob in #alerts', body: 'bob: nora: the build is red', account: 1,
      conversation: { kind: 'chat', name: CHANNEL }, seq: 42, mention: true, tag: '1/chat/#alerts' };
    // Under load, headless Chromium has dropped a DevTools-delivered push
    // (delivered, no worker error, nothing shown; not reproduced in 5 runs
    // since): deliver again after 4 s, at most 5 times. The same tag makes
    // a repeat replace the first, so exactly one notification is expected.
    let shown = [];
    let deliveries = 0;
    while (!shown.length && deliveries < 5) {
      deliveries++;
      await cdp.send('ServiceWorker.deliverPushMessage', {
        origin: sapphire.url.replace(/\/$/, ''), registrationId, data: JSON.stringify(payload),
      });
      // (waitForFunction does not wait on a promise: poll from here.)
      for (const deadline = Date.now() + 4000; !shown.length && Date.now() < deadline;) {
        shown = await page.evaluate(async () => {
          const n = await (await navigator.serviceWorker.ready).getNotifications();
          return n.map((x) => ({ title: x.title, body: x.body, tag: x.tag, data: x.data }));
        });
        if (!shown.length) await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.deepEqual(shown, [{ title: payload.title, body: payload.body, tag: payload.tag,
      data: { account: 1, conversation: payload.conversation, seq: 42 } }]);
    await cdp.send('ServiceWorker.disable');
    await cdp.detach();
    await page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).forEach((n) => n.close()));
  });

  it('notifies of a mention while in the background, and its click opens the message', async () => {
    await page.addInitScript(spyScript);
    await page.reload();
    await scene.signInAndJoin(USER, PASSWORD);
    // Turned on from the settings page (the only place it is asked).
    await page.click('#btn-settings');
    assert.equal(await page.evaluate(() => Notification.permission), 'default');
    await page.check('#set-notify');
    // Headless Chromium has no push service: desktop notifications only.
    await until(page, () => !/^(On…)?$/.test(document.querySelector('#notify-status').textContent));
    assert.match(await page.textContent('#notify-status'), /^(On\.|Desktop notifications are on)/);
    assert.equal(await page.evaluate(() => Notification.permission), 'granted');
    await convItem(page, CHANNEL).locator('button').click();

    await page.evaluate(() => { window.__background = true; });
    bob.send(`PRIVMSG ${CHANNEL} :just chatting`);
    bob.send(`PRIVMSG ${CHANNEL} :${USER}: look at this`);
    await waitText(page, `${USER}: look at this`);
    const shown = await page.evaluate(() => window.__shown.map((n) => [n.title, n.body, n.tag]));
    assert.deepEqual(shown, [[`bob in ${CHANNEL}`, `bob: ${USER}: look at this`, `1/chat/${CHANNEL}`]],
      'chatter at the default level does not notify; the mention does');

    // The click: the conversation, at that message.
    await page.click('#btn-settings');
    await page.evaluate(() => { window.__background = false; window.__shown[0].onclick(); });
    await until(page, (c) => document.querySelector('#conv-name').textContent === c
      && !document.querySelector('#conv-view').hidden, CHANNEL);
    await until(page, (t) => [...document.querySelectorAll('#messages .msg.found .text')].some((e) => e.textContent === t),
      `${USER}: look at this`);

    // Not while the tab is in front.
    bob.send(`PRIVMSG ${CHANNEL} :${USER}: and this`);
    await waitText(page, `${USER}: and this`);
    assert.equal(await page.evaluate(() => window.__shown.length), 1);
  });

  it('gives mentions their own badge and count, highlights the line and lists them', async () => {
    const line = page.locator('#messages .msg', { hasText: `${USER}: look at this` });
    assert.match(await line.getAttribute('class'), /\bmention\b/);
    const plain = page.locator('#messages .msg', { hasText: 'just chatting' });
    const bg = (l) => l.evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.notEqual(await bg(line), await bg(plain), 'the mention is highlighted');

    // Away from the channel: one mention among two unread messages.
    await page.click('#btn-settings');
    bob.send(`PRIVMSG ${CHANNEL} :more chatter`);
    bob.send(`PRIVMSG ${CHANNEL} :${USER}: third`);
    const badges = await until(page, (c) => {
      const li = document.querySelector(`#conv-list li[data-name="${c}"]`);
      const m = li && li.querySelector('.badge.mention-count');
      const u = li && li.querySelector('.badge.unread');
      return m && u && u.textContent === '2' ? [m.textContent, getComputedStyle(m).backgroundColor,
        getComputedStyle(u).backgroundColor] : null;
    }, CHANNEL).then((h) => h.jsonValue());
    assert.equal(badges[0], '@1');
    assert.notEqual(badges[1], badges[2], 'the mention badge has its own colour');

    // A new tab shows the same badge (the backend counts mentions), and the
    // history it loads keeps the mention highlighted.
    const fresh = watchPage(await browser.newPage(), problems);
    await fresh.goto(sapphire.url);
    await appReady(fresh);
    await until(fresh, (c) => document.querySelector(`#conv-list li[data-name="${c}"] .badge.mention-count`)
      ?.textContent === '@1', CHANNEL);
    await convItem(fresh, CHANNEL).locator('button').click();
    await until(fresh, (t) => [...document.querySelectorAll('#messages .msg.mention .text')].some((e) => e.textContent === t),
      `${USER}: look at this`);
    await fresh.close();
    await page.bringToFront();
    // The Mentions page of a fresh tab lists them all, from the backend.
    const other = watchPage(await browser.newPage(), problems);
    await other.goto(sapphire.url);
    await appReady(other);
    await other.click('#btn-mentions');
    await until(other, () => document.querySelectorAll('#mentions-list li').length === 3);
    await other.close();
    await page.bringToFront();
    // A mention in a /me line is listed as the channel shows it.
    bob.send(`PRIVMSG ${CHANNEL} :\x01ACTION waves at ${USER}\x01`);
    await page.click('#btn-mentions');
    await until(page, () => document.querySelectorAll('#mentions-list li').length === 4);
    const texts = await page.$$eval('#mentions-list li .text', (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts, [`* bob waves at ${USER}`, `${USER}: third`, `${USER}: and this`, `${USER}: look at this`]);
    await screenshot(page, 'n1-mentions', 'mentions');
    await page.locator('#mentions-list li', { hasText: `${USER}: and this` }).locator('button').click();
    await until(page, (t) => [...document.querySelectorAll('#messages .msg.found .text')].some((e) => e.textContent === t),
      `${USER}: and this`);
  });

  it('opens the message a push notification names when it starts a new tab', async () => {
    // What the service worker opens when no tab is left: /#open=<the payload's place>.
    const seq = await page.$eval('#messages .msg.mention', (el) => Number(el.dataset.seq));
    const where = { account: 1, conversation: { kind: 'chat', name: CHANNEL }, seq };
    const tab = watchPage(await browser.newPage(), problems);
    await tab.goto(`${sapphire.url}#open=${encodeURIComponent(JSON.stringify(where))}`);
    await appReady(tab);
    await until(tab, (s) => document.querySelector(`#messages .msg.found[data-seq="${s}"]`), seq);
    assert.equal(await tab.textContent('#conv-name'), CHANNEL);
    assert.equal(new URL(tab.url()).hash, '', 'the address is clean again');
    await tab.close();
  });

  it('syncs a conversation\'s level to the other tabs', async () => {
    const page2 = watchPage(await browser.newPage(), problems);
    await page2.goto(sapphire.url);
    await appReady(page2);
    await convItem(page2, CHANNEL).locator('button').click();
    await until(page2, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
    assert.equal(await page2.inputValue('#conv-level'), 'default');
    assert.equal(await page2.textContent('#conv-level option[value="default"]'), 'Default (mentions only)');
    await page.bringToFront();
    await page.selectOption('#conv-level', 'none');
    await until(page2, () => document.querySelector('#conv-level').value === 'none');
    // Muted: a mention in the background notifies no more.
    const before = await page.evaluate(() => window.__shown.length);
    await page.evaluate(() => { window.__background = true; });
    bob.send(`PRIVMSG ${CHANNEL} :${USER}: muted now`);
    await waitText(page, `${USER}: muted now`);
    assert.equal(await page.evaluate(() => window.__shown.length), before);
    await page.evaluate(() => { window.__background = false; });
    await page2.close();
  });

  it('turns notifications off on this browser when signing out', async () => {
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('sapphire.settings')).notifications), false);
    assert.deepEqual(problems, []);
  });
});
