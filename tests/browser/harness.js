// Harness for the browser tests: the real sapphire-proxy (which spawns the
// real sapphire-backend), a real ngircd on a free loopback port, a plain IRC
// peer over a raw TCP socket, a TCP relay in front of the proxy (to cut the
// network), and Debian's Chromium driven by playwright-core.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const BIN_DIR = path.resolve(ROOT, process.env.SAPPHIRE_BIN_DIR || 'target/debug');
export const ARTIFACTS = path.resolve(ROOT, process.env.SAPPHIRE_ARTIFACTS || 'tests/artifacts/browser');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Generous: ngircd throttles, libpurple connects at its own pace. */
export const WAIT = 20000;

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sapphire-${prefix}-`));
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitTcp(port, child, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited early (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}`);
    await sleep(50);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Kills a child process (and waits for it). */
async function stopChild(child, signal = 'SIGTERM', ms = 8000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await done;
  clearTimeout(t);
}

// ---------------------------------------------------------------- ngircd

export class Ngircd {
  static async start() {
    const dir = tempDir('ngircd');
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'motd'), 'test server\n');
    const conf = path.join(dir, 'ngircd.conf');
    fs.writeFileSync(conf, [
      '[Global]', 'Name = irc.test', 'Info = Sapphire browser test', 'Listen = 127.0.0.1',
      `Ports = ${port}`, `MotdFile = ${path.join(dir, 'motd')}`, `PidFile = ${path.join(dir, 'pid')}`,
      '[Limits]', 'MaxNickLength = 20', 'MaxConnectionsIP = 0', 'PingTimeout = 120', 'PongTimeout = 60',
      '[Options]', 'PAM = no', 'Ident = no', 'DNS = no', '',
    ].join('\n'));
    const child = spawn('/usr/sbin/ngircd', ['--nodaemon', '--config', conf], { stdio: 'ignore' });
    await waitTcp(port, child, 'ngircd');
    const n = new Ngircd();
    Object.assign(n, { dir, port, child });
    return n;
  }

  async stop() {
    await stopChild(this.child);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- IRC peer

/** The other person: a plain IRC client on a raw socket. */
export class IrcPeer {
  static async connect(port, nick) {
    const p = new IrcPeer();
    p.nick = nick;
    p.lines = [];
    p.waiters = [];
    p.sock = net.connect(port, '127.0.0.1');
    let buf = '';
    p.sock.setEncoding('utf8');
    p.sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        if (line.startsWith('PING ')) {
          p.send(`PONG ${line.slice(5)}`);
          continue;
        }
        p.lines.push(line);
        p.poke();
      }
    });
    await new Promise((resolve, reject) => {
      p.sock.once('connect', resolve);
      p.sock.once('error', reject);
    });
    p.send(`NICK ${nick}`);
    p.send(`USER ${nick} 0 * :${nick}`);
    await p.expect(/ 001 /);
    return p;
  }

  send(line) {
    this.sock.write(`${line}\r\n`);
  }

  poke() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits for a line matching `re` received after the last match. */
  async expect(re, ms = WAIT) {
    const deadline = Date.now() + ms;
    this.from = this.from || 0;
    for (;;) {
      for (let i = this.from; i < this.lines.length; i++) {
        if (re.test(this.lines[i])) {
          this.from = i + 1;
          return this.lines[i];
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`IRC peer ${this.nick}: no line matching ${re}; got:\n${this.lines.slice(-20).join('\n')}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  close() {
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------- the network in between

/**
 * A TCP relay between the browser and the proxy. `cut()` drops every open
 * connection (the browser sees the server end its WebSocket); while `down`,
 * new connections are dropped at once.
 */
export class NetLink {
  static async start(targetPort) {
    const l = new NetLink();
    l.conns = new Set();
    l.down = false;
    l.server = net.createServer((c) => {
      if (l.down) {
        c.destroy();
        return;
      }
      const up = net.connect(targetPort, '127.0.0.1');
      const pair = { c, up };
      l.conns.add(pair);
      const drop = () => {
        c.destroy();
        up.destroy();
        l.conns.delete(pair);
      };
      c.on('error', drop);
      up.on('error', drop);
      c.on('close', drop);
      up.on('close', drop);
      c.pipe(up);
      up.pipe(c);
    });
    l.port = await freePort();
    await new Promise((r) => l.server.listen(l.port, '127.0.0.1', r));
    return l;
  }

  cut() {
    for (const { c, up } of this.conns) {
      c.destroy();
      up.destroy();
    }
    this.conns.clear();
  }

  setDown(down) {
    this.down = down;
    if (down) this.cut();
  }

  async stop() {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

// ---------------------------------------------------------------- Sapphire

let certCache = null;
/**
 * One self-signed certificate for every proxy of this run, and the SHA-256
 * of its public key, which Chromium is told to trust
 * (--ignore-certificate-errors-spki-list): with a certificate error
 * Chromium refuses to register the service worker and caches no document,
 * so the tests would not see what users with a real certificate see.
 */
export function testCert() {
  if (certCache) return certCache;
  const dir = tempDir('cert');
  const cert = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  const pub = new crypto.X509Certificate(fs.readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  certCache = { cert, key, spki: crypto.createHash('sha256').update(pub).digest('base64') };
  return certCache;
}

export class Sapphire {
  /**
   * Starts the real proxy (spawn launcher) with the given users.
   * `backendToml`: the spawned backends' backend.toml (passed as systemd
   * would, in $CREDENTIALS_DIRECTORY, which the backends inherit).
   */
  static async start(users, { backendToml = null } = {}) {
    const s = new Sapphire();
    s.dir = tempDir('proxy');
    s.env = {};
    if (backendToml !== null) {
      const creds = path.join(s.dir, 'credentials');
      fs.mkdirSync(creds);
      fs.writeFileSync(path.join(creds, 'backend.toml'), backendToml);
      s.env.CREDENTIALS_DIRECTORY = creds;
    }
    s.accounts = path.join(s.dir, 'accounts.json');
    for (const [name, password] of Object.entries(users)) {
      const r = spawnSync(path.join(BIN_DIR, 'sapphire-ctl'), ['--accounts', s.accounts, 'user', 'add', name, '--password-stdin'],
        { input: `${password}\n`, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`sapphire-ctl user add ${name} failed: ${r.stderr}`);
    }
    s.port = await freePort();
    s.log = path.join(s.dir, 'proxy.log');
    await s.launch();
    return s;
  }

  async launch() {
    const out = fs.openSync(this.log, 'a');
    this.child = spawn(path.join(BIN_DIR, 'sapphire-proxy'), [
      '--listen', `127.0.0.1:${this.port}`,
      '--accounts', this.accounts,
      '--state-dir', path.join(this.dir, 'state'),
      '--backend-dir', path.join(this.dir, 'run'),
      '--launcher', 'spawn',
      '--backend-bin', path.join(BIN_DIR, 'sapphire-backend'),
      '--tls-cert', testCert().cert, '--tls-key', testCert().key,
    ], { stdio: ['ignore', out, out], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...this.env } });
    fs.closeSync(out);
    await waitTcp(this.port, this.child, 'sapphire-proxy');
  }

  get url() {
    return `https://127.0.0.1:${this.port}/`;
  }

  /** Pids of the backends this proxy spawned. */
  backendPids() {
    const pids = [];
    for (const task of fs.readdirSync(`/proc/${this.child.pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${this.child.pid}/task/${task}/children`, 'utf8').trim();
      if (kids) pids.push(...kids.split(/\s+/).map(Number));
    }
    return pids.filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sapphire-backend');
      } catch (_) {
        return false;
      }
    });
  }

  logText() {
    try { return fs.readFileSync(this.log, 'utf8'); } catch (_) { return ''; }
  }

  async stop() {
    await stopChild(this.child, 'SIGTERM', 10000);
    if (!process.env.SAPPHIRE_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- Chromium

// The proxy's certificate is the test's own (testCert()), trusted by its
// key's hash (launchBrowser): `ignoreHTTPSErrors` alone covers pages but not
// service worker scripts (registering /sw.js fails with "SSL certificate
// error"), and Chromium caches nothing from a site with a certificate error.
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Debian's Chromium with a fresh profile (user data dir). */
export async function launchBrowser(options = {}) {
  const profile = tempDir('chromium');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${testCert().spki}`],
    ignoreHTTPSErrors: true,
    viewport: { width: 1200, height: 780 },
    ...options,
  });
  context.profile = profile;
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return context;
}

/** Records page errors, CSP violations and failed console errors. */
export function watchPage(page, problems) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed sign-ins and a cut network are expected by the tests.
    const expected = /status of 40[13]|status of 429|net::ERR_CONNECTION_(RESET|CLOSED|REFUSED)|WebSocket connection to .* failed/;
    if (m.type() === 'error' && !expected.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return page;
}

/**
 * Saves a screenshot under tests/artifacts/browser/. With
 * SAPPHIRE_UPDATE_DOC_IMAGES=1, the ones the user guide shows (`doc`) are
 * also written to docs/images/.
 */
export async function screenshot(page, name, doc) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  if (doc && process.env.SAPPHIRE_UPDATE_DOC_IMAGES) {
    fs.copyFileSync(file, path.join(ROOT, 'docs', 'images', `${doc}.png`));
  }
}

// ---------------------------------------------------------------- a test's scene

/**
 * What a browser test file starts in `before` and stops in `after`: an IM
 * server (`server()`, ngircd unless told otherwise), the proxy with `users`,
 * optionally a NetLink in front of it (`link`), Chromium with one page whose
 * problems go to `scene.problems`, and plain IRC peers (`peers`, nicks) that
 * are connected, then each in `channel`. `stop()` ends whatever was started,
 * also after a failed `start()`.
 */
export class Scene {
  problems = [];

  peers = [];

  async start({ users, server = Ngircd.start, link = false, peers = [], channel = null }) {
    this.server = await server();
    this.sapphire = await Sapphire.start(users);
    if (link) this.link = await NetLink.start(this.sapphire.port);
    this.browser = await launchBrowser();
    this.page = watchPage(await this.browser.newPage(), this.problems);
    for (const nick of peers) this.peers.push(await IrcPeer.connect(this.server.port, nick));
    this.channel = channel;
    if (channel) {
      for (const p of this.peers) {
        p.send(`JOIN ${channel}`);
        await p.expect(/ 366 /);
      }
    }
    return this;
  }

  /**
   * From the sign-in page: signs `user` in, adds their IRC account on the
   * scene's ngircd, joins the scene's channel and waits until every peer
   * has seen the join.
   */
  async signInAndJoin(user, password) {
    const { page, channel } = this;
    await page.locator('#login-view').waitFor({ state: 'visible' });
    await signIn(page, user, password);
    await appReady(page);
    await addIrcAccount(page, user, this.server.port);
    await joinChat(page, channel);
    for (const p of this.peers) await p.expect(new RegExp(`JOIN :?${channel}`));
  }

  async stop() {
    for (const p of this.peers) p.close();
    if (this.browser) await this.browser.close();
    if (this.link) await this.link.stop();
    if (this.sapphire) {
      if (process.env.SAPPHIRE_SHOW_LOG) console.log(this.sapphire.logText());
      await this.sapphire.stop();
    }
    if (this.server) await this.server.stop();
  }
}

// ---------------------------------------------------------------- prosody

/**
 * A private prosody (XMPP) on a free loopback port, STARTTLS required, with
 * a self-signed certificate for `localhost` and a MUC at conference.localhost.
 */
export class Prosody {
  static async start(users) {
    const d = tempDir('prosody');
    const port = await freePort();
    const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
      '-keyout', path.join(d, 'localhost.key'), '-out', path.join(d, 'localhost.crt')], { encoding: 'utf8' });
    if (ssl.status !== 0) throw new Error(`openssl failed: ${ssl.stderr}`);
    fs.mkdirSync(path.join(d, 'data'));
    const conf = path.join(d, 'prosody.cfg.lua');
    fs.writeFileSync(conf, `-- Test server: foreground, loopback only.
prosody_user = "root"
prosody_group = "root"
run_as_root = true
pidfile = "${d}/prosody.pid"
data_path = "${d}/data"
certificates = "${d}"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence"; "message"; "iq"; }
modules_disabled = { "s2s"; "admin_shell"; }
c2s_ports = { ${port} }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
log = { error = "${d}/prosody.log" }
authentication = "internal_plain"
c2s_require_encryption = true
ssl = { key = "${d}/localhost.key"; certificate = "${d}/localhost.crt"; }
VirtualHost "localhost"
Component "conference.localhost" "muc"
`);
    for (const [user, password] of Object.entries(users)) {
      const r = spawnSync('prosodyctl', ['--config', conf, 'register', user, 'localhost', password], { encoding: 'utf8', cwd: d });
      if (r.status !== 0) throw new Error(`prosodyctl register ${user} failed: ${r.stderr}`);
    }
    const child = spawn('prosody', ['--config', conf], { stdio: 'ignore', cwd: d });
    await waitTcp(port, child, 'prosody');
    const p = new Prosody();
    Object.assign(p, { dir: d, port, child });
    return p;
  }

  async stop() {
    await stopChild(this.child);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- what the user sees

/** Waits until fn(arg) is truthy in the page. */
export const until = (p, fn, arg, timeout = WAIT) => p.waitForFunction(fn, arg, { timeout, polling: 50 });

/** Waits until a message with exactly this text is shown in the open conversation. */
export const waitText = (p, text, timeout = WAIT) => until(p,
  (t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t), text, timeout);

/** The conversation list item of `name`. */
export const convItem = (p, name) => p.locator(`#conv-list li.conv-item[data-name="${name}"]`);

export async function signIn(p, user, password) {
  await p.fill('#username', user);
  await p.fill('#password', password);
  await p.press('#password', 'Enter');
}

/** Signed in and connected. */
export async function appReady(p) {
  await p.locator('#app-view').waitFor({ state: 'visible', timeout: WAIT });
  await p.locator('#conn-banner').waitFor({ state: 'hidden', timeout: WAIT });
}

/** Adds an IRC account for `nick` on the test ngircd through the accounts page, and waits until it is connected. */
export async function addIrcAccount(p, nick, ircPort) {
  await p.click('#btn-accounts');
  await p.click('#btn-add-account');
  await p.locator('#acc-protocol option[value="prpl-irc"]').waitFor({ state: 'attached' });
  await p.selectOption('#acc-protocol', 'prpl-irc');
  await p.fill('#acc-username', nick);
  await p.fill('#acc-split-0', '127.0.0.1');
  await p.click('#acc-advanced summary');
  await p.fill('#opt-port', String(ircPort));
  await p.click('#account-submit');
  await p.locator('#dlg-account').waitFor({ state: 'hidden' });
  await p.locator('#account-list .account', { hasText: `${nick}@127.0.0.1` }).locator('.pill.connected').waitFor({ timeout: WAIT });
}

/** Joins a chat through the Join dialog and waits until it is open. */
export async function joinChat(p, name) {
  await p.click('#btn-join');
  await p.fill('#join-name', name);
  await p.press('#join-name', 'Enter');
  await until(p, (c) => document.querySelector('#conv-name').textContent === c
    && !document.querySelector('#conv-view').hidden && !document.querySelector('#btn-leave').hidden, name);
}
