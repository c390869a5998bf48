#!/usr/bin/env node
// Figures for the web client (printed, never asserted): bytes and time of a
// first load and of a reload (against the files' own size), the time to switch into a channel holding
// 10,000 loaded messages, and the page's heap with them.
//
//   node tests/browser/perf.js            (after tests/browser/run installed the npm packages)
//   SAPPHIRE_PERF_MESSAGES=20000 node tests/browser/perf.js
//
// The channel is filled by a minimal IRC server written here (ngircd
// throttles a client to a few lines a second): it welcomes the account,
// confirms its JOIN and then sends the messages as fast as the socket takes
// them. Everything else is the real proxy, backend and Chromium.

import fs from 'node:fs';
import net from 'node:net';
import { Sapphire, addIrcAccount, appReady, convItem, joinChat, launchBrowser, signIn, until } from './harness.js';

const WEB = new URL('../../web', import.meta.url).pathname;
const N = Number(process.env.SAPPHIRE_PERF_MESSAGES || 10000);
const USER = 'perf';
const PASSWORD = 'a password for the perf run';

/** An IRC server that fills #perf with N messages once the account joins it. */
function floodServer() {
  const server = net.createServer((sock) => {
    let nick = 'perf';
    let buf = '';
    const send = (l) => sock.write(`${l}\r\n`);
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        const [cmd, ...args] = line.split(' ');
        if (cmd === 'NICK') nick = args[0];
        else if (cmd === 'USER') {
          send(`:irc.perf 001 ${nick} :Welcome`);
          send(`:irc.perf 375 ${nick} :- motd`);
          send(`:irc.perf 376 ${nick} :End of MOTD`);
        } else if (cmd === 'PING') send(`:irc.perf PONG irc.perf :${args.join(' ').replace(/^:/, '')}`);
        else if (cmd === 'JOIN') {
          const chan = args[0].replace(/^:/, '');
          send(`:${nick}!u@127.0.0.1 JOIN :${chan}`);
          send(`:irc.perf 353 ${nick} = ${chan} :${nick} talker`);
          send(`:irc.perf 366 ${nick} ${chan} :End of NAMES`);
          if (chan === '#perf') {
            let k = 0;
            const pump = () => {
              while (k < N) {
                const ok = sock.write(`:talker!t@127.0.0.1 PRIVMSG #perf :message ${k} with some ordinary words in it and a link https://example.org/${k}\r\n`);
                k++;
                if (!ok) {
                  sock.once('drain', pump);
                  return;
                }
              }
            };
            pump();
          }
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Bytes received over the network by the page (CDP), while `fn` runs. */
async function bytesDuring(page, fn) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  let bytes = 0;
  let requests = 0;
  let notModified = 0;
  let fileBytes = 0;
  const urls = new Map();
  const bodyless = new Set();
  cdp.on('Network.responseReceived', (e) => {
    urls.set(e.requestId, e.response.url);
  });
  // What came over the wire (not what the cache made of it): a 304 has no
  // Content-Length, every 200 of the proxy has one.
  cdp.on('Network.responseReceivedExtraInfo', (e) => {
    const h = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k.toLowerCase(), v]));
    if (e.statusCode === 304 || !('content-length' in h)) bodyless.add(e.requestId);
  });
  cdp.on('Network.loadingFinished', (e) => {
    bytes += e.encodedDataLength;
    requests++;
    const path = new URL(urls.get(e.requestId) || 'https://x/api').pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    if (/^[a-z0-9-]+\.[a-z]+$/.test(file) && fs.existsSync(`${WEB}/${file}`)) {
      fileBytes += fs.statSync(`${WEB}/${file}`).size;
      if (bodyless.has(e.requestId)) notModified++;
    }
  });
  await fn();
  await cdp.detach();
  return { bytes, requests, notModified, fileBytes };
}

/** SAPPHIRE_PERF_PROFILE=1: where one switch spends its time (CPU profile, top self times). */
async function profileSwitch(page) {
  await convItem(page, '#quiet').locator('button').click();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  await cdp.send('Profiler.start');
  await page.evaluate(() => document.querySelector('#conv-list li[data-name="#perf"] button').click());
  const { profile } = await cdp.send('Profiler.stop');
  await cdp.detach();
  const self = new Map();
  const dt = new Map();
  profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) || 0) + (profile.timeDeltas[i] || 0)));
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const k = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
    self.set(k, (self.get(k) || 0) + (dt.get(n.id) || 0));
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
  console.log('profile of one switch (self time):');
  for (const [k, us] of top) console.log(`  ${(us / 1000).toFixed(1).padStart(7)} ms  ${k}`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const irc = await floodServer();
  const sapphire = await Sapphire.start({ [USER]: PASSWORD });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const first = await bytesDuring(page, async () => {
      await page.goto(sapphire.url);
      await page.locator('#login-view').waitFor({ state: 'visible' });
    });
    console.log(`first load (sign-in page): ${first.bytes} bytes in ${first.requests} responses; the files themselves: ${first.fileBytes} bytes`);
    await signIn(page, USER, PASSWORD);
    await appReady(page);
    await addIrcAccount(page, USER, irc.address().port);
    await joinChat(page, '#quiet');
    const t0 = Date.now();
    await joinChat(page, '#perf');
    await until(page, (n) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent.startsWith(`message ${n - 1} `)), N, 600000);
    console.log(`${N} messages arrived and were shown live in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const switches = [];
    const frames = [];
    for (let i = 0; i < 7; i++) {
      await convItem(page, '#quiet').locator('button').click();
      await until(page, () => document.querySelector('#conv-name').textContent === '#quiet');
      const r = await page.evaluate(() => new Promise((resolve) => {
        const btn = document.querySelector('#conv-list li[data-name="#perf"] button');
        const start = performance.now();
        btn.click();
        void document.querySelector('#scroller').scrollHeight; // layout
        const sync = performance.now() - start;
        requestAnimationFrame(() => setTimeout(() => resolve({ sync, frame: performance.now() - start }), 0));
      }));
      switches.push(r.sync);
      frames.push(r.frame);
    }
    if (process.env.SAPPHIRE_PERF_PROFILE) await profileSwitch(page);
    const rendered = await page.locator('#messages > li').count();
    console.log(`switch into #perf (${N} loaded messages, ${rendered} rows rendered): median ${median(switches).toFixed(1)} ms `
      + `(click to layout), ${median(frames).toFixed(1)} ms to the next frame; all: ${switches.map((x) => x.toFixed(1)).join(', ')}`);

    const cdp = await page.context().newCDPSession(page);
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    console.log(`JS heap with ${N} messages loaded: ${(heap.usedSize / 1048576).toFixed(1)} MB used`);
    await cdp.detach();

    // The same page loaded with an empty cache (a first visit, signed in),
    // then reloaded with what it cached (a returning visit): bytes on the
    // wire, against the files' own size (the baseline: what the proxy sent
    // before compression and revalidation), and when the first message of
    // the conversation the tab had open (#perf) is on screen.
    for (const cold of [true, false]) {
      const cdp = await page.context().newCDPSession(page);
      if (cold) await cdp.send('Network.clearBrowserCache');
      await cdp.detach();
      const r = await bytesDuring(page, async () => {
        await page.reload();
        await appReady(page);
      });
      const tFirst = await page.evaluate(() => new Promise((resolve) => {
        const done = () => document.querySelector('#messages .msg');
        if (done()) resolve(performance.now());
        new MutationObserver((_, o) => {
          if (done()) {
            o.disconnect();
            resolve(performance.now());
          }
        }).observe(document.body, { childList: true, subtree: true });
      }));
      const label = cold ? 'first load (signed in, empty cache)' : 'reload (signed in, cached)';
      console.log(`${label}: ${r.bytes} bytes in ${r.requests} responses (${r.notModified} of them 304); `
        + `the files themselves: ${r.fileBytes} bytes; first message shown ${tFirst.toFixed(0)} ms after navigation start`);
    }
  } finally {
    await browser.close();
    await sapphire.stop();
    irc.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
