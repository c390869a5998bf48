// Notifications in the browser: the service worker (/sw.js, which shows
// Web Push notifications while no tab is open), the setting that turns
// notifications on (the only place the permission is asked, never on page
// load), this browser's push subscription, and desktop notifications for
// new messages while the tab is in the background. Which messages notify
// is notify.js (pure); the backend decides what it pushes by the same
// levels.

import { $, setText } from './dom.js';
import { levelFor, notificationFor, notifies, parseHighlights } from './notify.js';

/** The service worker's registration (null where there is none). */
let registration = null;

/**
 * Registers /sw.js (root scope) and routes its "open this message" to
 * `open({account, conversation, seq})`. Asks for no permission.
 */
export function startServiceWorker(open) {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  navigator.serviceWorker.addEventListener('message', (ev) => {
    const d = ev.data;
    if (d && d.type === 'open' && typeof d.account === 'number' && d.conversation) open(d);
  });
  return navigator.serviceWorker.register('/sw.js').then((r) => {
    registration = r;
    return r;
  }, () => null);
}

/** The message a notification's click asks for, from the page address (#open=…), once. */
export function takeOpenRequest() {
  const m = /^#open=(.+)$/.exec(window.location.hash);
  if (!m) return null;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  try {
    const d = JSON.parse(decodeURIComponent(m[1]));
    if (typeof d.account === 'number' && d.conversation && typeof d.conversation.name === 'string') return d;
  } catch (_) { /* not ours */ }
  return null;
}

const supported = () => typeof Notification !== 'undefined';

/** Shows a desktop notification for a live message, if it should. */
export function notifyMessage(ctx, conv, m) {
  if (!ctx.settings().notifications || !supported() || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  if (!notifies(levelFor(ctx.state.notify, conv.account, conv.kind, conv.name), m, conv.kind)) return;
  const n = notificationFor(conv, m);
  const shown = new Notification(n.title, { body: n.body, tag: n.tag, icon: '/icon-192.png' });
  shown.onclick = () => {
    window.focus();
    shown.close();
    ctx.openMessage({ account: conv.account, conversation: { kind: conv.kind, name: conv.name }, seq: m.seq });
  };
}

function base64UrlToBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** Subscribes this browser to Web Push with the backend's key; returns a sentence for the settings page. */
async function subscribePush(conn) {
  if (!registration || !('PushManager' in window)) {
    return 'This browser has no Web Push: notifications appear only while Sapphire is open.';
  }
  try {
    const { key } = await conn.request('push.vapid_key', {});
    const reg = await navigator.serviceWorker.ready;
    let sub = await reg.pushManager.getSubscription();
    // A browser without a reachable push service may never answer.
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the browser\'s push service did not answer')), 10000));
    if (!sub) {
      sub = await Promise.race([timeout,
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlToBytes(key) })]);
    }
    await conn.request('push.subscribe', { subscription: sub.toJSON() });
    return 'On. Push notifications reach this device while Sapphire is closed.';
  } catch (err) {
    return `Desktop notifications are on; push to this device failed (${err.message || err.code || err}).`;
  }
}

/**
 * After a (re)connection: tells the backend this browser's subscription
 * again (idempotent; browsers may renew subscriptions). Asks nothing.
 */
export async function syncPush(conn) {
  if (!registration || !('PushManager' in window) || !supported() || Notification.permission !== 'granted') return;
  try {
    const sub = await registration.pushManager.getSubscription();
    if (sub) await conn.request('push.subscribe', { subscription: sub.toJSON() });
  } catch (_) { /* tried again at the next connection */ }
}

/** Ends this browser's push subscription (and tells the backend when it can). */
export async function stopPush(conn) {
  try {
    await unsubscribePush(conn);
  } catch (_) { /* the push service answers 410 to the backend later */ }
}

async function unsubscribePush(conn) {
  if (!registration || !('PushManager' in window)) return;
  const sub = await registration.pushManager.getSubscription().catch(() => null);
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe().catch(() => {});
  if (conn) {
    const told = conn.request('push.unsubscribe', { endpoint }).catch(() => {});
    await Promise.race([told, new Promise((r) => setTimeout(r, 3000))]);
  }
}

/**
 * Wires the notification settings: the switch (which asks for the
 * permission) and the highlight words (backend state). `save(settings)`
 * stores this browser's settings.
 */
export function bindNotificationSettings(ctx, save) {
  const box = $('set-notify');
  const status = $('notify-status');
  box.addEventListener('change', async () => {
    const conn = ctx.conn();
    if (!box.checked) {
      save({ ...ctx.settings(), notifications: false });
      setText(status, 'Off.');
      await unsubscribePush(conn);
      return;
    }
    if (!supported()) {
      box.checked = false;
      setText(status, 'This browser cannot show notifications.');
      return;
    }
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (permission !== 'granted') {
      box.checked = false;
      setText(status, 'Notifications are blocked for this site: allow them in the browser’s site settings, then try again.');
      return;
    }
    save({ ...ctx.settings(), notifications: true });
    setText(status, 'On…');
    setText(status, conn ? await subscribePush(conn) : 'On.');
  });
  const words = $('set-highlights');
  words.addEventListener('change', async () => {
    const conn = ctx.conn();
    if (!conn) return;
    try {
      await conn.request('notify.set', { highlights: parseHighlights(words.value) });
    } catch (err) {
      setText(status, `Could not save the highlight words: ${ctx.errText(err)}`);
    }
  });
  /** Shows the current values (when the settings page opens, or they change elsewhere). */
  return () => {
    const on = ctx.settings().notifications && supported() && Notification.permission === 'granted';
    box.checked = on;
    if (!status.textContent) setText(status, on ? 'On.' : 'Off.');
    if (document.activeElement !== words) words.value = ctx.state.notify.highlights.join(', ');
  };
}
