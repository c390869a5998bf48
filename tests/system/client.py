#!/usr/bin/python3
"""A browser's view of Sapphire, for the system test. Standard library only.

Speaks to the proxy the way the web client does: TLS to port 443, JSON
sign-in at /api/login (cookie jar with the __Host- session cookie), then a
WebSocket at /ws with the page's Origin, relaying the backend protocol
(docs/protocol.md). Also a minimal IRC client for the far side of a chat.

Every subcommand prints what it saw as JSON lines on stdout and exits 0 on
success, 1 on a failed expectation (with the reason on stderr).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import time


class Fail(Exception):
    pass


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --ca FILE and --servername NAME (set by main): trust only FILE's
# certificates, send NAME as SNI and Host, check the certificate names it.
CA = None
SERVERNAME = None


def tls_context():
    # Without --ca the server has a self-signed certificate; it is checked by
    # fingerprint (pinned from the proxy host's journal) instead of by a CA.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if CA:
        ctx.load_verify_locations(cafile=CA)
        ctx.check_hostname = SERVERNAME is not None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wrap(raw):
    return tls_context().wrap_socket(raw, server_hostname=SERVERNAME)


class HTTPS(http.client.HTTPSConnection):
    """HTTPS to an address, with --servername as SNI and Host."""

    def __init__(self, addr, port, timeout):
        super().__init__(SERVERNAME or addr, port, timeout=timeout)
        self.addr = addr

    def connect(self):
        self.sock = wrap(socket.create_connection((self.addr, self.port), self.timeout))


def fingerprint_of(der):
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def server_fingerprint(host, port=443):
    with socket.create_connection((host, port), timeout=10) as raw:
        with wrap(raw) as s:
            return fingerprint_of(s.getpeercert(binary_form=True)), s.version()


class Browser:
    """One browser profile: a cookie jar and an origin."""

    def __init__(self, host, port=443, fingerprint=None):
        self.host = host
        self.port = port
        name = SERVERNAME or host
        self.origin = "https://%s" % name if port == 443 else "https://%s:%d" % (name, port)
        self.fingerprint = fingerprint
        self.cookies = {}

    def _check_cert(self, sock):
        if self.fingerprint:
            got = fingerprint_of(sock.getpeercert(binary_form=True))
            if got != self.fingerprint.upper():
                raise Fail("certificate fingerprint %s, expected %s" % (got, self.fingerprint))

    def cookie_header(self):
        return "; ".join("%s=%s" % kv for kv in self.cookies.items())

    def request(self, method, path, body=None):
        conn = HTTPS(self.host, self.port, timeout=20)
        conn.connect()
        self._check_cert(conn.sock)
        headers = {"Origin": self.origin}
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.cookies:
            headers["Cookie"] = self.cookie_header()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                self._store_cookie(value)
        conn.close()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data

    def _store_cookie(self, header):
        parts = [p.strip() for p in header.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {p.partition("=")[0].lower() for p in parts[1:]}
        if name.startswith("__Host-"):
            # What a browser enforces for the prefix, and what the issue asks.
            for need in ("secure", "httponly", "samesite", "path"):
                if need not in attrs:
                    raise Fail("cookie %s lacks %s: %s" % (name, need, header))
        if value == "" or "max-age=0" in header.lower():
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def login(self, user, password):
        status, _, body = self.request("POST", "/api/login", {"username": user, "password": password})
        if status // 100 != 2:
            raise Fail("login as %s: HTTP %d %r" % (user, status, body[:200]))
        if not any(k.startswith("__Host-") for k in self.cookies):
            raise Fail("login set no __Host- cookie (cookies: %s)" % list(self.cookies))
        status, _, body = self.request("GET", "/api/session")
        if status != 200 or json.loads(body).get("username") != user:
            raise Fail("/api/session after login: HTTP %d %r" % (status, body[:200]))

    def websocket(self, path="/ws"):
        return WebSocket.connect(self, path)


class WebSocket:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def connect(cls, browser, path):
        raw = socket.create_connection((browser.host, browser.port), timeout=20)
        sock = wrap(raw)
        browser._check_cert(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\nCookie: %s\r\n\r\n"
            % (path, SERVERNAME or browser.host, key, browser.origin, browser.cookie_header())
        )
        sock.sendall(req.encode())
        ws = cls(sock)
        head = ws._read_until(b"\r\n\r\n").decode("latin-1")
        status = head.split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            raise Fail("WebSocket upgrade refused: %s" % status)
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        if accept.lower() not in head.lower():
            raise Fail("bad Sec-WebSocket-Accept in %r" % head)
        return ws

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Fail("connection closed during handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Fail("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout):
        """Next JSON message, or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            message = b""
            while True:
                b0, b1 = self._read_exact(2)
                opcode, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read_exact(8))[0]
                payload = self._read_exact(n)
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    raise Fail("WebSocket closed by server (code %s %r)" % (code, payload[2:]))
                if opcode == 0x9:
                    self._send_frame(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                message += payload
                if fin:
                    return json.loads(message)
        except (socket.timeout, TimeoutError):
            return None

    def request(self, rid, op, timeout=20, **params):
        """Sends a request; returns (reply, events seen while waiting)."""
        self.send(dict(id=rid, op=op, **params))
        deadline = time.monotonic() + timeout
        events = []
        while time.monotonic() < deadline:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            if msg is None:
                break
            if msg.get("re") == rid:
                return msg, events
            events.append(msg)
        raise Fail("no reply to %s (id %s) within %ss" % (op, rid, timeout))

    def wait_event(self, pred, timeout, what, already=()):
        for msg in already:
            if pred(msg):
                return msg
        deadline = time.monotonic() + timeout
        seen = list(already)
        while time.monotonic() < deadline:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            if msg is None:
                break
            seen.append(msg)
            if pred(msg):
                return msg
        raise Fail("no %s within %ss; saw %s" % (what, timeout, json.dumps(seen)[-2000:]))

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
            self.sock.close()
        except OSError:
            pass


class Irc:
    """The other side of the chat: a plain IRC client on the test host."""

    def __init__(self, host, port, nick):
        self.nick = nick
        self.sock = socket.create_connection((host, port), timeout=30)
        self.buf = b""
        self.send("NICK %s" % nick)
        self.send("USER %s 0 * :Sapphire system test" % nick)
        self.wait(lambda l: " 001 " in l, 30, "IRC welcome")

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def lines(self, timeout):
        self.sock.settimeout(timeout)
        try:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise Fail("IRC server closed the connection")
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return []
        *complete, self.buf = self.buf.split(b"\r\n")
        out = []
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            if line.startswith("PING"):
                self.send("PONG" + line[4:])
            out.append(line)
        return out

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines(max(0.1, deadline - time.monotonic())):
                if pred(line):
                    return line
        raise Fail("no %s within %ss" % (what, timeout))


def open_ws(a):
    """A WebSocket to the user's backend: through the proxy as a signed-in
    browser, or, with --backend-socket, straight to the backend's Unix socket
    (what the proxy does after sign-in; for testing the backend alone)."""
    if a.backend_socket:
        raw = socket.socket(socket.AF_UNIX)
        raw.settimeout(20)
        raw.connect(a.backend_socket)
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % key
            ).encode()
        )
        ws = WebSocket(raw)
        status = ws._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            raise Fail("backend refused the WebSocket upgrade: %s" % status)
        return ws
    b = Browser(a.host, fingerprint=a.fingerprint)
    b.login(a.user, a.password)
    return b.websocket()


def account_id(reply):
    acc = reply.get("account")
    if isinstance(acc, dict):
        return acc.get("id", acc)
    return acc


def cmd_fingerprint(a):
    fp, version = server_fingerprint(a.host)
    print(json.dumps({"fingerprint": fp, "tls": version}))


def cmd_hello(a):
    ws = open_ws(a)
    params = {} if a.since is None else {"since": a.since}
    reply, _ = ws.request(1, "hello", **params)
    print(json.dumps(reply))
    if reply.get("ok") is not True or "protocol" not in reply:
        raise Fail("hello reply is not ok: %s" % reply)
    ws.close()


def cmd_hold(a):
    """A WebSocket that stays open across whatever the test does meanwhile:
    prints "open" once it is relaying, waits for a line on stdin, then
    checks that the same connection still relays a request and its reply."""
    ws = open_ws(a)
    hello, _ = ws.request(1, "hello")
    if hello.get("ok") is not True:
        raise Fail("hello: %s" % hello)
    print("open", flush=True)
    sys.stdin.readline()
    reply, _ = ws.request(2, "ping")
    if reply.get("ok") is not True:
        raise Fail("ping on the old WebSocket: %s" % reply)
    print(json.dumps({"still_relaying": reply}), flush=True)
    ws.close()


def cmd_pem(a):
    """GET a PEM document over HTTPS without checking the server (pebble's
    root from its management port, bootstrapping the trust of the test)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(a.host, a.port, timeout=20, context=ctx)
    conn.request("GET", a.path)
    resp = conn.getresponse()
    body = resp.read().decode()
    if resp.status != 200 or "-----BEGIN CERTIFICATE-----" not in body:
        raise Fail("GET %s: HTTP %d %r" % (a.path, resp.status, body[:200]))
    sys.stdout.write(body)


def cmd_plain(a):
    """Plain HTTP on port 80: prints the status and the Location."""
    conn = http.client.HTTPConnection(a.host, 80, timeout=20)
    conn.request(a.method, a.path, headers={"Host": SERVERNAME or a.host})
    resp = conn.getresponse()
    resp.read()
    print(resp.status, resp.getheader("Location") or "-")


def expect_ws_refused(b, code, what):
    """Fails unless /ws refuses browser `b` with HTTP `code` (a string);
    `what` says whose upgrade it is."""
    try:
        WebSocket.connect(b, "/ws")
        raise Fail("/ws %s was accepted" % what)
    except Fail as e:
        if code not in str(e):
            raise


def cmd_refusals(a):
    """What a browser must not get: wrong password, foreign Origin, no session."""
    b = Browser(a.host, fingerprint=a.fingerprint)
    status, _, body = b.request("POST", "/api/login", {"username": a.user, "password": a.password + "x"})
    print(json.dumps({"wrong_password": status}))
    if status != 401:
        raise Fail("wrong password gave HTTP %d" % status)
    expect_ws_refused(b, "401", "without a session")
    b.login(a.user, a.password)
    b.origin = "https://evil.example"
    expect_ws_refused(b, "403", "with a foreign Origin")
    print(json.dumps({"no_session": 401, "foreign_origin": 403}))


def cmd_irc(a):
    """Browser -> backend -> IRC server -> IRC user, and back."""
    ws = open_ws(a)
    hello, _ = ws.request(1, "hello")
    if not hello.get("ok"):
        raise Fail("hello: %s" % hello)
    bob = Irc(a.host, a.irc_port, a.peer)
    port = a.tls_port if a.tls else a.irc_port
    reply, early = ws.request(
        2,
        "account.add",
        protocol="prpl-irc",
        username="%s@%s" % (a.nick, a.irc_server),
        options={"port": port, "ssl": a.tls},
    )
    if not reply.get("ok"):
        raise Fail("account.add: %s" % reply)
    acc = account_id(reply)
    prompts = []

    def connected_or_prompt(m):
        # A self-signed server certificate makes libpurple ask; the user
        # (this test) accepts it explicitly. Nothing is accepted by default.
        if m.get("op") == "request.open" and m.get("kind") == "action":
            for action in m.get("actions", []):
                if "accept" in str(action.get("label", "")).replace("_", "").lower():
                    prompts.append(m.get("title") or m.get("primary"))
                    ws.send({"id": 100 + len(prompts), "op": "request.answer",
                             "request": m["request"], "action": action["id"]})
        return m.get("op") == "account.status" and m.get("status") == "connected"

    ws.wait_event(connected_or_prompt, 60, "account.status connected", early)
    if a.tls and not prompts:
        raise Fail("TLS to a self-signed server connected without a certificate prompt")
    out_text = "hello %s, this is %s through Sapphire %d" % (a.peer, a.nick, os.getpid())
    reply, _ = ws.request(
        3, "conversation.send", account=acc, conversation={"kind": "im", "name": a.peer}, text=out_text
    )
    if not reply.get("ok"):
        raise Fail("conversation.send: %s" % reply)
    bob.wait(lambda l: "PRIVMSG %s :%s" % (a.peer, out_text) in l, 30, "the message at the IRC peer")
    in_text = "hi %s, %s here on IRC %d" % (a.nick, a.peer, os.getpid())
    bob.send("PRIVMSG %s :%s" % (a.nick, in_text))
    ev = ws.wait_event(
        lambda m: m.get("op") == "message" and in_text in str(m.get("text")) and m.get("direction") == "in",
        60,
        "the IRC reply as a message event",
    )
    print(json.dumps({"sent": out_text, "received": ev, "certificate_prompts": prompts}))
    ws.close()


def cmd_history(a):
    """After a restart: a new connection's hello replays the stored events."""
    ws = open_ws(a)
    hello, events = ws.request(1, "hello", since=0)
    if not hello.get("ok"):
        raise Fail("hello: %s" % hello)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(a.expect in json.dumps(e) for e in events):
            print(json.dumps({"last_seq": hello.get("last_seq"), "found": a.expect}))
            ws.close()
            return
        msg = ws.recv(1)
        if msg is not None:
            events.append(msg)
    raise Fail("%r not among %d replayed events" % (a.expect, len(events)))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--fingerprint", help="expected SHA-256 of the server certificate")
    p.add_argument("--backend-socket", help="talk to this backend socket directly, not through the proxy")
    p.add_argument("--ca", help="trust only this PEM file's certificates (and check the chain)")
    p.add_argument("--servername", help="the site's name: SNI, Host and Origin (checked with --ca)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fingerprint")
    s = sub.add_parser("pem")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--path", required=True)
    s = sub.add_parser("plain")
    s.add_argument("--method", default="GET")
    s.add_argument("--path", default="/")
    for name in ("hello", "refusals", "irc", "history", "hold"):
        s = sub.add_parser(name)
        s.add_argument("--user", default="")
        s.add_argument("--password", default="")
        if name == "hello":
            s.add_argument("--since", type=int)
        if name == "irc":
            s.add_argument("--irc-port", type=int, default=6667)
            s.add_argument("--irc-server", default="127.0.0.1", help="as the backend reaches it")
            s.add_argument("--nick", required=True)
            s.add_argument("--peer", default="bob")
            s.add_argument("--tls", action="store_true", help="connect the account over TLS")
            s.add_argument("--tls-port", type=int, default=6697)
        if name == "history":
            s.add_argument("--expect", required=True)
    a = p.parse_args()
    global CA, SERVERNAME
    CA, SERVERNAME = a.ca, a.servername
    try:
        {
            "fingerprint": cmd_fingerprint,
            "hello": cmd_hello,
            "refusals": cmd_refusals,
            "irc": cmd_irc,
            "history": cmd_history,
            "hold": cmd_hold,
            "pem": cmd_pem,
            "plain": cmd_plain,
        }[a.cmd](a)
    except (Fail, OSError, ValueError, http.client.HTTPException) as e:
        log("client: %s: %s" % (a.cmd, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
