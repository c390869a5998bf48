// Sapphire's web client in Debian's Chromium, against the real proxy, the
// real backend and a real ngircd, with a plain IRC peer as the other person.
// The steps build on each other, like a person's first session.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  IrcPeer, Scene, WAIT, appReady, convItem, launchBrowser, screenshot, signIn, until, waitText, watchPage,
} from './harness.js';

const USER = 'alice';
const PASSWORD = 'correct horse battery staple';
const CHANNEL = '#sapphire';

const scene = new Scene();
const { problems } = scene;
let irc;
let sapphire;
let link;
let browser;
let page; // tab 1, through the NetLink
let page2; // tab 2, through the NetLink
let bob;

/** The texts of the messages shown in the open conversation, in order. */
// (System lines such as "The topic is ..." legitimately repeat after a rejoin.)
const shownTexts = (p) => p.$$eval('#messages .msg:not(.system) .text', (els) => els.map((e) => e.textContent));

/** Every message element has its own seq: nothing is shown twice. */
async function assertUniqueSeqs(p) {
  const seqs = await p.$$eval('#messages .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.equal(new Set(seqs).size, seqs.length, `duplicate seqs: ${seqs}`);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'messages in seq order');
}

async function unreadOf(p, name) {
  return p.$eval(`#conv-list li.conv-item[data-name="${name}"]`, (li) => {
    const b = li.querySelector('.badge.unread');
    return b ? Number(b.textContent) : 0;
  }).catch(() => null);
}

function assertNoDuplicates(texts) {
  const seen = new Set();
  for (const t of texts) {
    assert.ok(!seen.has(t), `message shown twice: ${JSON.stringify(t)} in ${JSON.stringify(texts)}`);
    seen.add(t);
  }
}

describe('Sapphire in a real Chromium', () => {
  before(async () => {
    // The other person is in the channel already, with a topic.
    await scene.start({ users: { [USER]: PASSWORD }, link: true, peers: ['bob'], channel: CHANNEL });
    ({ server: irc, sapphire, link, browser, page, peers: [bob] } = scene);
    bob.send(`TOPIC ${CHANNEL} :Welcome to the test`);
    await bob.expect(/TOPIC/);
  });

  after(() => scene.stop());

  it('serves the client with a strict CSP and a web app manifest', async () => {
    const res = await page.goto(`https://127.0.0.1:${link.port}/`);
    const csp = res.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    const manifest = await page.evaluate(async () => (await fetch('/manifest.webmanifest')).json());
    assert.equal(manifest.display, 'standalone');
    assert.ok(manifest.icons.some((i) => i.sizes === '512x512'));
    const icon = await page.evaluate(async () => (await fetch('/icon-192.png')).headers.get('content-type'));
    assert.equal(icon, 'image/png');
    // Chromium's own verdict: the app can be installed.
    const cdp = await page.context().newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors, []);
    await cdp.detach();
  });

  it('refuses a wrong password with a clear message, then signs in', async () => {
    await page.locator('#login-view').waitFor({ state: 'visible' });
    await signIn(page, USER, 'not my password');
    await until(page, () => document.querySelector('#login-error').textContent !== '');
    assert.equal(await page.textContent('#login-error'), 'Wrong user name or password.');
    assert.ok(await page.isHidden('#app-view'));
    await screenshot(page, '01-login-wrong-password', 'login-wrong-password');
    await signIn(page, USER, PASSWORD);
    await appReady(page);
    assert.equal(await page.textContent('#who'), USER);
    assert.equal(await page.textContent('#login-error'), '');
  });

  it('tells a user who is rate limited when to try again', async () => {
    const other = await launchBrowser();
    try {
      const p = watchPage(await other.newPage(), problems);
      await p.goto(sapphire.url);
      await p.locator('#login-view').waitFor({ state: 'visible' });
      for (let i = 0; i < 8; i++) {
        await Promise.all([
          p.waitForResponse((r) => r.url().endsWith('/api/login')),
          signIn(p, 'mallory', `guess ${i}`),
        ]);
        await until(p, () => document.querySelector('#login-error').textContent !== '');
        if (/Too many/.test(await p.textContent('#login-error'))) break;
        assert.equal(await p.textContent('#login-error'), 'Wrong user name or password.');
      }
      assert.match(await p.textContent('#login-error'), /Too many failed sign-ins\. Try again in \d+ seconds\./);
      assert.ok(await p.isDisabled('#login-submit'), 'the button waits while rate limited');
      assert.match(await p.textContent('#login-submit'), /wait \d+ s/);
      await screenshot(p, '02-login-rate-limited');
    } finally {
      await other.close();
    }
  });

  it('adds an IRC account from the protocol list and shows it connected', async () => {
    await page.click('#btn-accounts');
    await page.click('#btn-add-account');
    await page.locator('#acc-protocol option[value="prpl-irc"]').waitFor({ state: 'attached' });
    const names = await page.$$eval('#acc-protocol option', (os) => os.map((o) => o.textContent));
    assert.ok(names.includes('IRC') && names.includes('XMPP'), `protocols: ${names}`);
    await page.selectOption('#acc-protocol', 'prpl-irc');
    await page.fill('#acc-username', USER);
    assert.equal(await page.inputValue('#acc-split-0'), 'irc.libera.chat', 'the server split has its default');
    await page.fill('#acc-split-0', '127.0.0.1');
    await page.click('#acc-advanced summary');
    await page.fill('#opt-port', String(irc.port));
    await screenshot(page, '03-add-irc-account', 'add-account');
    await page.click('#account-submit');
    await page.locator('#dlg-account').waitFor({ state: 'hidden' });
    const row = page.locator('#account-list .account', { hasText: `${USER}@127.0.0.1` });
    await row.locator('.pill.connected').waitFor({ timeout: WAIT });
    await screenshot(page, '04-accounts', 'accounts');
  });

  it('joins a channel and shows its topic and members', async () => {
    await page.click('#btn-join');
    await page.fill('#join-name', CHANNEL);
    await page.press('#join-name', 'Enter');
    await until(page, (c) => document.querySelector('#conv-name').textContent === c
      && !document.querySelector('#conv-view').hidden, CHANNEL);
    await until(page, () => document.querySelector('#conv-topic').textContent === 'Welcome to the test');
    await bob.expect(/JOIN/);
    await page.click('#btn-members');
    await until(page, () => {
      const names = [...document.querySelectorAll('#member-list li')].map((l) => l.textContent);
      return names.some((n) => n.endsWith('bob')) && names.some((n) => n.endsWith('alice'));
    });
    await page.click('#members-close');
  });

  it('exchanges messages with a plain IRC peer, as text', async () => {
    bob.send(`PRIVMSG ${CHANNEL} :hello <b>alice</b> & welcome`);
    await waitText(page, 'hello <b>alice</b> & welcome');
    const line = page.locator('#messages .msg.in', { hasText: 'hello <b>alice</b>' });
    assert.equal(await line.locator('.sender').textContent(), 'bob');
    assert.equal(await page.locator('#messages b').count(), 0, 'IRC text is never parsed as HTML');

    await page.fill('#compose', 'hi bob, 1 < 2');
    await page.press('#compose', 'Enter');
    const got = await bob.expect(/PRIVMSG #sapphire :/);
    assert.match(got, /:hi bob, 1 < 2$/);
    await waitText(page, 'hi bob, 1 < 2');
    assert.equal(await page.inputValue('#compose'), '', 'the composer is cleared once sent');

    bob.send(`PRIVMSG ${CHANNEL} :<img src=x onerror="document.title='pwned'">`);
    await waitText(page, '<img src=x onerror="document.title=\'pwned\'">');
    assert.equal(await page.locator('#messages img').count(), 0);
    assert.notEqual(await page.title(), 'pwned');

    // Web addresses become links; nothing else does.
    bob.send(`PRIVMSG ${CHANNEL} :docs at https://example.org/a?b=1&c=<2>, not javascript:alert(1)`);
    await waitText(page, 'docs at https://example.org/a?b=1&c=<2>, not javascript:alert(1)');
    const links = await page.$$eval('#messages .msg .text a', (as) => as.map((a) => [a.getAttribute('href'), a.textContent, a.rel]));
    assert.deepEqual(links, [['https://example.org/a?b=1&c=', 'https://example.org/a?b=1&c=', 'noopener noreferrer']]);
    assertNoDuplicates(await shownTexts(page));
    await assertUniqueSeqs(page);
    // Looking at the conversation marks it read.
    await until(page, (n) => !document.querySelector(`#conv-list li[data-name="${n}"] .badge.unread`), CHANNEL);
    await screenshot(page, '05-channel');
  });

  it('follows topic and membership changes, and leaves and rejoins', async () => {
    bob.send(`TOPIC ${CHANNEL} :A new topic from bob`);
    await until(page, () => document.querySelector('#conv-topic').textContent === 'A new topic from bob');
    await page.click('#btn-leave');
    await bob.expect(/PART #sapphire/);
    await until(page, () => !document.querySelector('#btn-rejoin').hidden);
    assert.equal(await page.textContent('#conv-topic'), 'You are not in this chat.');
    assert.ok(await page.isDisabled('#compose'), 'cannot write to a chat one left');
    await page.click('#btn-rejoin');
    await bob.expect(/JOIN/);
    await until(page, () => !document.querySelector('#btn-leave').hidden);
    await until(page, () => document.querySelector('#conv-topic').textContent === 'A new topic from bob');
    await until(page, () => document.querySelector('#member-count').textContent === '(2)');
    assert.ok(await page.isEnabled('#compose'));
  });

  it('shows the history after a reload', async () => {
    await page.reload();
    await appReady(page);
    await convItem(page, CHANNEL).locator('button').click();
    await waitText(page, 'hi bob, 1 < 2');
    const texts = (await shownTexts(page)).filter((t) => !t.includes('has joined') && !t.includes('topic'));
    const want = ['hello <b>alice</b> & welcome', 'hi bob, 1 < 2', '<img src=x onerror="document.title=\'pwned\'">'];
    assert.deepEqual(texts.filter((t) => want.includes(t)), want, `history in order: ${JSON.stringify(texts)}`);
    assertNoDuplicates(await shownTexts(page));
    await assertUniqueSeqs(page);
    await until(page, (c) => document.querySelector('#conv-topic').textContent === c, 'A new topic from bob');
  });

  it('keeps two tabs in sync, read markers included', async () => {
    page2 = watchPage(await browser.newPage(), problems);
    await page2.goto(`https://127.0.0.1:${link.port}/`);
    await appReady(page2);
    await convItem(page2, CHANNEL).locator('button').click();
    await waitText(page2, 'hi bob, 1 < 2');

    // Sent from tab 2: tab 1 and bob see it once.
    await page2.fill('#compose', 'sent from tab two');
    await page2.press('#compose', 'Enter');
    await bob.expect(/PRIVMSG #sapphire :sent from tab two/);
    await waitText(page, 'sent from tab two');
    await waitText(page2, 'sent from tab two');
    assertNoDuplicates(await shownTexts(page));
    await assertUniqueSeqs(page);
    assertNoDuplicates(await shownTexts(page2));
    await assertUniqueSeqs(page2);

    // Neither tab looks at the channel: both count the new message.
    await page.bringToFront();
    await page.click('#btn-accounts');
    await page2.bringToFront();
    await page2.click('#btn-accounts');
    bob.send(`PRIVMSG ${CHANNEL} :are you there?`);
    await until(page, (n) => {
      const b = document.querySelector(`#conv-list li[data-name="${n}"] .badge.unread`);
      return b && b.textContent === '1';
    }, CHANNEL);
    await until(page2, (n) => {
      const b = document.querySelector(`#conv-list li[data-name="${n}"] .badge.unread`);
      return b && b.textContent === '1';
    }, CHANNEL);
    assert.equal(await page.title(), '(1) Sapphire');
    await screenshot(page, '06-unread', 'unread');
    // Reading it in tab 2 clears the count in tab 1.
    await convItem(page2, CHANNEL).locator('button').click();
    await waitText(page2, 'are you there?');
    await until(page, (n) => !document.querySelector(`#conv-list li[data-name="${n}"] .badge.unread`), CHANNEL);
    assert.equal(await unreadOf(page, CHANNEL), 0);
    assert.equal(await page.title(), 'Sapphire');
  });

  it('reconnects after losing the network and resumes by seq, without duplicates', async () => {
    // (The tab a person acts in is in front: Chromium throttles the others.)
    await page.bringToFront();
    await convItem(page, CHANNEL).locator('button').click();
    await waitText(page, 'are you there?');
    const before = await shownTexts(page);
    const sent = [];
    page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));

    // A third tab, straight to the proxy, is our witness that the backend
    // got the messages while tabs 1 and 2 were cut off.
    const witness = watchPage(await browser.newPage(), problems);
    await witness.goto(sapphire.url);
    await appReady(witness);
    await convItem(witness, CHANNEL).locator('button').click();
    await waitText(witness, 'are you there?');

    link.setDown(true);
    await page.locator('#conn-banner').waitFor({ state: 'visible' });
    await until(page, () => /Reconnecting|Connection lost/.test(document.querySelector('#conn-text').textContent));
    await screenshot(page, '07-offline', 'offline');
    bob.send(`PRIVMSG ${CHANNEL} :missed one`);
    bob.send(`PRIVMSG ${CHANNEL} :missed two`);
    await waitText(witness, 'missed two');
    assert.ok(!(await shownTexts(page)).includes('missed one'), 'tab 1 really was offline');
    link.setDown(false);

    await page.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 40000 });
    await waitText(page, 'missed two');
    const afterTexts = await shownTexts(page);
    assertNoDuplicates(afterTexts);
    assert.deepEqual(afterTexts, [...before, 'missed one', 'missed two']);
    const hellos = sent.filter((s) => s.includes('"op":"hello"'));
    assert.ok(hellos.some((s) => /"since":\d+/.test(s)), `resumed with hello {since}: ${hellos}`);

    // Tab 2 resumed too, and still works.
    await page2.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 40000 });
    await waitText(page2, 'missed two');
    assertNoDuplicates(await shownTexts(page2));
    await assertUniqueSeqs(page2);
    await page2.bringToFront();
    await page2.fill('#compose', 'back online');
    await page2.press('#compose', 'Enter');
    await bob.expect(/PRIVMSG #sapphire :back online/);
    await waitText(page, 'back online');
    await witness.close();
    await page.bringToFront();
  });

  it('resumes when the server side closes the socket (backend killed and restarted)', async () => {
    const before = await shownTexts(page);
    const pids = sapphire.backendPids();
    assert.equal(pids.length, 1, `one backend: ${pids}`);
    process.kill(pids[0], 'SIGKILL');
    // The proxy restarts the backend; the client reconnects and resumes:
    // the channel is closed by the restart (IRC has no memory) and the
    // account comes back.
    await until(page, () => !document.querySelector('#btn-rejoin').hidden, undefined, 40000);
    await page.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 40000 });
    assert.equal(await page.textContent('#conv-topic'), 'You are not in this chat.');
    assert.deepEqual(await shownTexts(page), before, 'nothing lost, nothing twice');
    await page.click('#btn-accounts');
    await page.locator('#account-list .account .pill.connected').waitFor({ timeout: WAIT });
    await convItem(page, CHANNEL).locator('button').click();
    await page.click('#btn-rejoin');
    await until(page, () => !document.querySelector('#btn-leave').hidden);
    await bob.expect(/JOIN/);
    bob.send(`PRIVMSG ${CHANNEL} :welcome back`);
    await waitText(page, 'welcome back');
    assertNoDuplicates(await shownTexts(page));
    await assertUniqueSeqs(page);
    await page2.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 40000 });
    await page2.bringToFront();
    await convItem(page2, CHANNEL).locator('button').click();
    await waitText(page2, 'welcome back');
    assertNoDuplicates(await shownTexts(page2));
    await assertUniqueSeqs(page2);
  });

  it('pages back through long history and finds old messages with search', async () => {
    await page.bringToFront();
    // Five more people talk at once (ngircd throttles each sender).
    const peers = await Promise.all([0, 1, 2, 3, 4].map((i) => IrcPeer.connect(irc.port, `carol${i}`)));
    for (const p of peers) {
      p.send(`JOIN ${CHANNEL}`);
      await p.expect(/ 366 /);
    }
    for (let k = 0; k < 12; k++) for (const [i, p] of peers.entries()) p.send(`PRIVMSG ${CHANNEL} :line ${k} from carol${i}`);
    await waitText(page, 'line 11 from carol4', 60000);
    await waitText(page2, 'line 11 from carol4', 60000);
    for (const p of peers) p.close();

    await page.reload();
    await appReady(page);
    await convItem(page, CHANNEL).locator('button').click();
    await waitText(page, 'line 11 from carol4');
    await page.locator('#btn-older').waitFor({ state: 'visible' });
    assert.ok(!(await shownTexts(page)).includes('hello <b>alice</b> & welcome'), 'only the last page is loaded at first');
    // Scrolling to the top loads older pages.
    for (let i = 0; i < 10 && !(await shownTexts(page)).includes('hello <b>alice</b> & welcome'); i++) {
      const n = await page.locator('#messages .msg').count();
      await page.click('#btn-older');
      await until(page, (m) => document.querySelectorAll('#messages .msg').length > m
        || !document.querySelector('#history-start').hidden, n);
    }
    const texts = await shownTexts(page);
    assert.ok(texts.includes('hello <b>alice</b> & welcome'));
    assertNoDuplicates(texts);
    const seqs = await page.$$eval('#messages .msg', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'messages in order');

    await page.reload();
    await appReady(page);
    await page.keyboard.press('Control+k');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'search-input');
    await page.keyboard.type('welcome');
    await page.keyboard.press('Enter');
    const result = page.locator('#search-results .result', { hasText: 'hello <b>alice</b> & welcome' });
    await result.waitFor();
    await screenshot(page, '08-search', 'search');
    await result.locator('button').click();
    await page.locator('#messages .msg.found', { hasText: 'hello <b>alice</b> & welcome' }).waitFor();
    await screenshot(page, '09-search-hit');
  });

  it('shows a prompt from the network as a dialog and answers it in every tab', async () => {
    await page.click('#btn-accounts');
    // A DCC file offer makes libpurple ask whether to accept it.
    bob.send('PRIVMSG alice :\x01DCC SEND notes.txt 2130706433 9 1234\x01');
    const dlg = page.locator('#dlg-request');
    await dlg.waitFor({ state: 'visible', timeout: WAIT });
    await page2.locator('#dlg-request').waitFor({ state: 'visible', timeout: WAIT });
    const text = await dlg.textContent();
    assert.match(text, /notes\.txt/);
    assert.match(text, /bob/);
    await screenshot(page, '10-prompt', 'prompt');
    const buttons = await dlg.locator('#request-actions button').allTextContents();
    assert.ok(buttons.length >= 2, `actions: ${buttons}`);
    const cancel = buttons.find((b) => /cancel|reject|decline/i.test(b)) || buttons[buttons.length - 1];
    await dlg.locator('#request-actions button', { hasText: cancel }).click();
    await dlg.waitFor({ state: 'hidden' });
    // Answered here: tab 2 closes its copy.
    await page2.locator('#dlg-request').waitFor({ state: 'hidden', timeout: WAIT });
  });

  it('opens a private conversation when someone writes, and manages buddies', async () => {
    await page.click('#btn-accounts');
    bob.send('PRIVMSG alice :psst, a private word');
    await until(page, () => {
      const b = document.querySelector('#conv-list li[data-name="bob"] .badge.unread');
      return b && b.textContent === '1';
    });
    await convItem(page, 'bob').locator('button').click();
    await waitText(page, 'psst, a private word');
    await until(page, () => !document.querySelector('#conv-list li[data-name="bob"] .badge.unread'));
    // Alt+Up/Down moves between conversations from the keyboard.
    await page.keyboard.press('Alt+ArrowDown');
    await until(page, (c) => document.querySelector('#conv-name').textContent === c, CHANNEL);
    await page.keyboard.press('Alt+ArrowUp');
    await until(page, () => document.querySelector('#conv-name').textContent === 'bob');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'compose');
    await page.fill('#compose', 'only for you');
    await page.press('#compose', 'Enter');
    await bob.expect(/PRIVMSG bob :only for you/);
    await waitText(page, 'only for you');
    await assertUniqueSeqs(page);

    // Add bob to the buddy list from the conversation, then remove him.
    await page.click('#btn-buddy');
    assert.equal(await page.inputValue('#buddy-name'), 'bob');
    await page.click('#buddy-form button[type=submit]');
    await page.locator('#buddy-list li', { hasText: 'bob' }).waitFor();
    await page2.locator('#buddy-list li', { hasText: 'bob' }).waitFor();
    assert.equal(await page.textContent('#btn-buddy'), 'Remove buddy');
    await screenshot(page, '10b-private-conversation', 'private-conversation');
    await page.click('#btn-buddy');
    await page.click('#confirm-yes');
    await page.locator('#buddy-list li', { hasText: 'bob' }).waitFor({ state: 'detached' });
    await page2.locator('#buddy-list li', { hasText: 'bob' }).waitFor({ state: 'detached' });
    assert.equal(await page.textContent('#btn-buddy'), 'Add buddy');
  });

  it('works on a phone-sized screen, with the keyboard', async () => {
    const phone = await launchBrowser({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    try {
      const p = watchPage(await phone.newPage(), problems);
      await p.goto(sapphire.url);
      await p.locator('#login-view').waitFor({ state: 'visible' });
      await p.keyboard.type(USER);
      await p.keyboard.press('Tab');
      await p.keyboard.type(PASSWORD);
      await p.keyboard.press('Enter');
      await appReady(p);
      assert.ok(await p.isVisible('#conv-list'));
      assert.ok(await p.isHidden('#main'), 'one pane at a time');
      await screenshot(p, '11-phone-list', 'phone-list');
      await convItem(p, CHANNEL).locator('button').tap();
      bob.send(`PRIVMSG ${CHANNEL} :hello phone`);
      await waitText(p, 'hello phone');
      assert.ok(await p.isHidden('#sidebar'));
      assert.ok(await p.isVisible('#compose'));
      const box = await p.locator('#composer').boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390 + 1, `composer fits: ${JSON.stringify(box)}`);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
      await p.fill('#compose', 'typed on a phone');
      await p.keyboard.press('Enter');
      await bob.expect(/PRIVMSG #sapphire :typed on a phone/);
      await waitText(p, 'typed on a phone');
      await screenshot(p, '12-phone-conversation');
      await p.click('#btn-members');
      await p.locator('#member-list li', { hasText: 'bob' }).waitFor();
      await screenshot(p, '13-phone-members');
      await p.click('#members-close');
      await p.locator('#conv-view [data-back]').tap();
      assert.ok(await p.isVisible('#conv-list'));
      await p.click('#logout');
      await p.locator('#login-view').waitFor({ state: 'visible' });
      assert.equal(await p.textContent('#login-error'), 'You are signed out.');
      const session = await p.evaluate(async () => (await fetch('/api/session')).status);
      assert.equal(session, 401, 'the session is gone');
    } finally {
      await phone.close();
    }
  });

  it('signs out every tab of the browser at once', async () => {
    await page2.bringToFront();
    await page2.click('#logout');
    await page2.locator('#login-view').waitFor({ state: 'visible' });
    assert.equal(await page2.textContent('#login-error'), 'You are signed out.');
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await page.textContent('#login-error'), 'You signed out in another tab.');
    assert.equal(await page.evaluate(async () => (await fetch('/api/session')).status), 401);
  });

  it('had no page errors and no CSP violations', () => {
    assert.deepEqual(problems, []);
  });
});
