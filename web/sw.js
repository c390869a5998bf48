// Sapphire's service worker (served at /sw.js, scope /): shows the
// notifications the backend sends by Web Push (docs/protocol.md, "Web
// Push payload") and, when one is clicked, brings a Sapphire tab forward
// at that message (or opens one). It caches nothing: the app needs its
// server anyway.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let d = {};
  try {
    d = event.data ? event.data.json() : {};
  } catch (_) {
    d = { body: event.data ? event.data.text() : '' };
  }
  const title = typeof d.title === 'string' && d.title ? d.title : 'Sapphire';
  const open = typeof d.account === 'number' && d.conversation
    ? { account: d.account, conversation: d.conversation, seq: d.seq } : null;
  event.waitUntil(self.registration.showNotification(title, {
    body: typeof d.body === 'string' ? d.body : '',
    tag: typeof d.tag === 'string' ? d.tag : undefined,
    icon: '/icon-192.png',
    data: open,
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const open = event.notification.data;
  event.waitUntil((async () => {
    const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin);
    if (tab) {
      await tab.focus();
      if (open) tab.postMessage({ type: 'open', ...open });
      return;
    }
    const url = open ? `/#open=${encodeURIComponent(JSON.stringify(open))}` : '/';
    await self.clients.openWindow(url);
  })());
});
