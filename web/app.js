// Sapphire's minimal web client: sign in, sign out, and a first exchange
// with the user's backend over the WebSocket at /ws.
'use strict';

const $ = (id) => document.getElementById(id);
let socket = null;

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  let data = {};
  try { data = await res.json(); } catch (_) { /* empty body */ }
  return { res, data };
}

function show(signedIn, user) {
  $('login').hidden = signedIn;
  $('signed-in').hidden = !signedIn;
  if (signedIn) {
    $('who').textContent = user;
    connect();
  } else if (socket) {
    socket.close();
    socket = null;
  }
}

function connect() {
  const url = `wss://${location.host}/ws`;
  socket = new WebSocket(url);
  $('backend-status').textContent = 'connecting…';
  socket.addEventListener('open', () => {
    $('backend-status').textContent = 'connected';
    socket.send(JSON.stringify({ id: 1, op: 'hello' }));
  });
  socket.addEventListener('message', (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.re === 1) {
      $('backend-hello').textContent = JSON.stringify(msg, null, 2);
    }
  });
  socket.addEventListener('close', (ev) => {
    $('backend-status').textContent = `disconnected (${ev.code})`;
  });
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  const { res, data } = await api('/api/login', {
    username: $('username').value,
    password: $('password').value,
  });
  if (res.ok) {
    $('password').value = '';
    show(true, data.username);
  } else {
    $('login-error').textContent = (data.error && data.error.message) || `Sign-in failed (${res.status}).`;
  }
});

$('logout').addEventListener('click', async () => {
  await api('/api/logout', {});
  show(false);
});

(async () => {
  const { res, data } = await api('/api/session');
  show(res.ok, data.username);
})();
